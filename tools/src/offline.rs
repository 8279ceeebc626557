//! Subcommands that work on a stopped node's files: verify, restore and the dumps.
//!
//! A node's data dir holds `SLOTMAP`, `LOCK` and one `shard-NNN` directory per shard; a
//! checkpoint has the same layout without `LOCK` and without WAL segments. These commands
//! take the data dir's lock (the node must be stopped) and never write to what they inspect.

use crate::{Failure, Global};
use clap::Args as ClapArgs;
use ringkv_engine::inspect::{self, Problem, VerifyReport};
use ringkv_server::node::lock_data_dir;
use ringkv_server::shard::admin::shard_dir_name;
use ringkv_server::slotmap::{self, SlotMap};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(ClapArgs, Debug)]
pub struct VerifyArgs {
    /// The data dir of a stopped node, a checkpoint, or one shard's directory.
    #[arg(long)]
    data_dir: PathBuf,
}

#[derive(ClapArgs, Debug)]
pub struct RestoreArgs {
    /// The checkpoint directory (written by `ringkv-admin checkpoint`).
    #[arg(long)]
    from: PathBuf,
    /// The data dir to create from it (must not exist, or be empty). Start
    /// `ringkv-server --data-dir` on it afterwards.
    #[arg(long)]
    data_dir: PathBuf,
}

#[derive(ClapArgs, Debug)]
pub struct SstDumpArgs {
    /// The SSTable file (`NNNNNN.sst` inside a shard directory).
    file: PathBuf,
    /// Print at most this many entries (0: only the summary).
    #[arg(long, default_value_t = u64::MAX, hide_default_value = true)]
    limit: u64,
    /// Print whole values instead of their first 32 bytes.
    #[arg(long)]
    values: bool,
}

#[derive(ClapArgs, Debug)]
pub struct WalDumpArgs {
    /// The WAL segment file (inside a shard directory's `wal/`).
    file: PathBuf,
    /// Print at most this many records (0: only the summary).
    #[arg(long, default_value_t = u64::MAX, hide_default_value = true)]
    limit: u64,
    /// Print whole values instead of their first 32 bytes.
    #[arg(long)]
    values: bool,
}

#[derive(ClapArgs, Debug)]
pub struct ManifestDumpArgs {
    /// The data dir of a stopped node, a checkpoint, or one shard's directory.
    #[arg(long)]
    data_dir: PathBuf,
}

/// Bytes as text: printable ASCII as is, the rest as `\xNN`.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' || b == b' ' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// A stored key (`slot u16 big-endian || user key`) as `slot=N key=...`.
fn stored_key(key: &[u8]) -> String {
    match key {
        [hi, lo, user @ ..] => format!(
            "slot={} key={}",
            u16::from_be_bytes([*hi, *lo]),
            escape(user)
        ),
        _ => format!("key={} (shorter than a slot prefix)", escape(key)),
    }
}

/// An internal key (stored key and trailer) as `slot=N key=... seq=S`.
fn internal_key(key: &[u8]) -> String {
    match ringkv_engine::key::parse_internal(key) {
        Some(k) => format!("{} seq={}", stored_key(k.user_key), k.seq),
        None => format!("{} (malformed internal key)", escape(key)),
    }
}

fn value_text(value: &[u8], whole: bool) -> String {
    if whole || value.len() <= 32 {
        escape(value)
    } else {
        format!("{}...", escape(&value[..32]))
    }
}

/// Shard ids and their directories.
type ShardDirs = Vec<(u16, PathBuf)>;

/// The shard directories of `dir`: itself if it is one shard's directory (it has a
/// `CURRENT`), else its `shard-NNN` directories, checked against its SLOTMAP.
fn shard_dirs(dir: &Path) -> Result<(Option<SlotMap>, ShardDirs), Failure> {
    if !dir.is_dir() {
        return Err(Failure::usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if dir.join("CURRENT").exists() {
        return Ok((None, vec![(0, dir.to_path_buf())]));
    }
    let map_path = dir.join(slotmap::FILE_NAME);
    let bytes = std::fs::read(&map_path).map_err(|e| {
        Failure::failed(format!(
            "{}: {e} (not a ringkv data dir, checkpoint or shard directory)",
            map_path.display()
        ))
    })?;
    let map = SlotMap::decode(&bytes)
        .map_err(|e| Failure::failed(format!("{}: {e:#}", map_path.display())))?;
    let dirs = (0..map.shard_count)
        .map(|shard| (shard, dir.join(shard_dir_name(shard))))
        .collect();
    Ok((Some(map), dirs))
}

/// Holds the node's lock while an offline command reads its data dir (not for a checkpoint
/// or a shard directory, which have no lock file).
fn lock_if_node(dir: &Path) -> Result<Option<ringkv_server::node::DirLock>, Failure> {
    if !dir.join("LOCK").exists() {
        return Ok(None);
    }
    lock_data_dir(dir).map(Some).map_err(|e| {
        Failure::failed(format!(
            "{e:#}: stop the node first, or verify a checkpoint"
        ))
    })
}

pub fn verify(global: &Global, args: VerifyArgs) -> Result<(), Failure> {
    let _lock = lock_if_node(&args.data_dir)?;
    let (map, dirs) = shard_dirs(&args.data_dir)?;
    let mut problems: Vec<Problem> = Vec::new();
    let mut shards = Vec::new();
    let mut total = VerifyReport::default();
    for (shard, dir) in &dirs {
        let report = if dir.is_dir() {
            inspect::verify_dir(dir)
                .map_err(|e| Failure::failed(format!("{}: {e}", dir.display())))?
        } else {
            VerifyReport {
                problems: vec![Problem {
                    path: dir.clone(),
                    offset: None,
                    detail: "shard directory is missing".into(),
                }],
                ..VerifyReport::default()
            }
        };
        total.sst_files += report.sst_files;
        total.sst_entries += report.sst_entries;
        total.wal_segments += report.wal_segments;
        total.wal_records += report.wal_records;
        shards.push(json!({
            "shard": shard,
            "dir": dir.display().to_string(),
            "sst_files": report.sst_files,
            "sst_entries": report.sst_entries,
            "wal_segments": report.wal_segments,
            "wal_records": report.wal_records,
            "problems": report.problems.iter().map(|p| json!({
                "path": p.path.display().to_string(),
                "offset": p.offset,
                "detail": p.detail,
            })).collect::<Vec<_>>(),
            "notes": report.notes,
        }));
        if !global.json {
            println!(
                "shard {shard} ({}): {} SSTables ({} entries), {} WAL segments ({} records): {}",
                dir.display(),
                report.sst_files,
                report.sst_entries,
                report.wal_segments,
                report.wal_records,
                if report.problems.is_empty() {
                    "ok"
                } else {
                    "DAMAGED"
                }
            );
            for p in &report.problems {
                println!("  CORRUPT {p}");
            }
            for n in &report.notes {
                println!("  note: {n}");
            }
        }
        problems.extend(report.problems);
    }
    if global.json {
        let doc = json!({
            "data_dir": args.data_dir.display().to_string(),
            "slot_map_epoch": map.as_ref().map(|m| m.epoch),
            "ok": problems.is_empty(),
            "shards": shards,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else if let Some(map) = &map {
        println!(
            "slot map: epoch {}, {} shards: ok",
            map.epoch, map.shard_count
        );
    }
    if problems.is_empty() {
        if !global.json {
            println!(
                "verified {}: {} SSTables, {} WAL segments, no damage",
                args.data_dir.display(),
                total.sst_files,
                total.wal_segments
            );
        }
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "{} damaged: {} problem(s), first: {}",
            args.data_dir.display(),
            problems.len(),
            problems[0]
        )))
    }
}

pub fn restore(global: &Global, args: RestoreArgs) -> Result<(), Failure> {
    let from = &args.from;
    let (map, dirs) = shard_dirs(from)?;
    let Some(map) = map else {
        return Err(Failure::usage(format!(
            "{} is one shard's directory, not a checkpoint (it has no SLOTMAP)",
            from.display()
        )));
    };
    // Check the checkpoint whole before anything is written.
    for (_, dir) in &dirs {
        let report = inspect::verify_dir(dir)
            .map_err(|e| Failure::failed(format!("{}: {e}", dir.display())))?;
        if let Some(p) = report.problems.first() {
            return Err(Failure::failed(format!(
                "the checkpoint is damaged, nothing restored: {p}"
            )));
        }
    }
    let target = &args.data_dir;
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Failure::usage(format!(
                    "{} exists and is not empty; restore into a new directory",
                    target.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure::failed(format!("{}: {e}", target.display()))),
    }
    std::fs::create_dir_all(target)
        .map_err(|e| Failure::failed(format!("{}: {e}", target.display())))?;
    let _lock = lock_data_dir(target).map_err(|e| Failure::failed(format!("{e:#}")))?;
    let mut files = 0u64;
    let mut bytes = 0u64;
    for (_, dir) in &dirs {
        let dest = target.join(dir.file_name().expect("shard dir has a name"));
        let (f, b) = copy_dir(dir, &dest)?;
        files += f;
        bytes += b;
    }
    map.store(target)
        .map_err(|e| Failure::failed(format!("writing the slot map: {e:#}")))?;
    sync_dir(target)?;
    if global.json {
        println!(
            "{}",
            json!({"restored": target.display().to_string(), "from": from.display().to_string(),
                   "shards": dirs.len(), "files": files, "bytes": bytes})
        );
    } else {
        println!(
            "restored {} shards ({files} files, {}) from {} into {}; start it with `ringkv-server --data-dir {}`",
            dirs.len(),
            crate::table::bytes(bytes),
            from.display(),
            target.display(),
            target.display()
        );
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Failure::failed(format!("syncing {}: {e}", dir.display())))
}

/// Copies the files of a shard's checkpoint directory (flat) into `dest`, syncing each
/// file and the directory. Returns files and bytes copied.
fn copy_dir(src: &Path, dest: &Path) -> Result<(u64, u64), Failure> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        Failure::failed(format!("{what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dest).map_err(|e| fail("creating", dest, e))?;
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(src).map_err(|e| fail("listing", src, e))? {
        let entry = entry.map_err(|e| fail("listing", src, e))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let to = dest.join(entry.file_name());
        bytes += std::fs::copy(&path, &to).map_err(|e| fail("copying", &path, e))?;
        std::fs::File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail("syncing", &to, e))?;
        files += 1;
    }
    sync_dir(dest)?;
    Ok((files, bytes))
}

pub fn sst_dump(global: &Global, args: SstDumpArgs) -> Result<(), Failure> {
    let mut printed = 0u64;
    let json = global.json;
    let summary = inspect::for_each_sst_entry(&args.file, |e| {
        if printed >= args.limit {
            return;
        }
        printed += 1;
        if json {
            println!(
                "{}",
                json!({"key": escape(e.user_key), "seq": e.seq, "deleted": e.deleted,
                       "value_bytes": e.value.len(), "value": value_text(e.value, args.values)})
            );
        } else if e.deleted {
            println!("{} seq={} DELETE", stored_key(e.user_key), e.seq);
        } else {
            println!(
                "{} seq={} PUT {} bytes: {}",
                stored_key(e.user_key),
                e.seq,
                e.value.len(),
                value_text(e.value, args.values)
            );
        }
    })
    .map_err(|e| Failure::failed(format!("{}: {e}", args.file.display())))?;
    let line = json!({"file": args.file.display().to_string(), "entries": summary.entries,
        "data_blocks": summary.data_blocks, "file_bytes": summary.file_size,
        "smallest": internal_key(&summary.smallest), "largest": internal_key(&summary.largest)});
    if json {
        println!("{line}");
    } else {
        println!(
            "{}: {} entries in {} data blocks, {} bytes",
            args.file.display(),
            summary.entries,
            summary.data_blocks,
            summary.file_size
        );
    }
    Ok(())
}

pub fn wal_dump(global: &Global, args: WalDumpArgs) -> Result<(), Failure> {
    let mut printed = 0u64;
    let mut records = 0u64;
    let mut ops = 0u64;
    let json = global.json;
    let end = inspect::for_each_wal_record(&args.file, |r| {
        records += 1;
        ops += r.ops.len() as u64;
        if printed >= args.limit {
            return;
        }
        printed += 1;
        if json {
            let list: Vec<_> = r
                .ops
                .iter()
                .map(|o| json!({"seq": o.seq, "deleted": o.deleted, "key": escape(o.key),
                                "value_bytes": o.value.len(), "value": value_text(o.value, args.values)}))
                .collect();
            println!(
                "{}",
                json!({"offset": r.offset, "index": r.index, "term": r.term, "ops": list})
            );
            return;
        }
        println!(
            "record at offset {} index {} term {}: {} ops",
            r.offset,
            r.index,
            r.term,
            r.ops.len()
        );
        for o in &r.ops {
            if o.deleted {
                println!("  seq={} DELETE {}", o.seq, stored_key(o.key));
            } else {
                println!(
                    "  seq={} PUT {} {} bytes: {}",
                    o.seq,
                    stored_key(o.key),
                    o.value.len(),
                    value_text(o.value, args.values)
                );
            }
        }
    })
    .map_err(|e| Failure::failed(format!("{}: {e}", args.file.display())))?;
    let summary = json!({"file": args.file.display().to_string(), "records": records, "ops": ops,
        "end_offset": end.end_offset, "torn_tail": end.torn_tail});
    if json {
        println!("{summary}");
    } else {
        println!(
            "{}: {records} records, {ops} ops; the log ends at offset {}{}",
            args.file.display(),
            end.end_offset,
            if end.torn_tail {
                " (a torn record follows: a write cut short by a crash)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

pub fn manifest_dump(global: &Global, args: ManifestDumpArgs) -> Result<(), Failure> {
    let (map, dirs) = shard_dirs(&args.data_dir)?;
    let mut shards = Vec::new();
    for (shard, dir) in &dirs {
        let (number, state) = inspect::manifest_state(dir)
            .map_err(|e| Failure::failed(format!("{}: {e}", dir.display())))?;
        let files: Vec<_> = state
            .files
            .values()
            .map(|f| {
                json!({"level": f.level, "number": f.number, "bytes": f.size,
                       "smallest": internal_key(&f.smallest), "largest": internal_key(&f.largest)})
            })
            .collect();
        if !global.json {
            println!(
                "shard {shard} ({}): MANIFEST-{number:06}, next file {}, last seq {}, first live WAL segment {}, WAL flushed through index {}",
                dir.display(),
                state.next_file_number,
                state.last_seq,
                state.wal_min_segment,
                state.wal_flushed_index
            );
            let mut t = crate::table::Table::new(["level", "file", "bytes", "smallest", "largest"]);
            for f in state.files.values() {
                t.row([
                    format!("L{}", f.level),
                    format!("{:06}.sst", f.number),
                    f.size.to_string(),
                    internal_key(&f.smallest),
                    internal_key(&f.largest),
                ]);
            }
            for line in t.render().lines() {
                println!("  {line}");
            }
        }
        shards.push(
            json!({"shard": shard, "manifest": number, "next_file_number": state.next_file_number,
            "last_seq": state.last_seq, "wal_min_segment": state.wal_min_segment,
            "wal_flushed_index": state.wal_flushed_index, "files": files}),
        );
    }
    if global.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"slot_map_epoch": map.as_ref().map(|m| m.epoch), "shards": shards})
            )
            .expect("json")
        );
    }
    Ok(())
}

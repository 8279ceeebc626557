//! Admin operations on one shard: FLUSH, COMPACT and CHECKPOINT.
//!
//! Each runs as a detached task of the shard's executor, so it finishes even if the client
//! that asked goes away, and so that a long compaction never holds up the frames behind it
//! (the frame's optimistic DONE answer waits in [`AdminWait`] until the job ends, like a
//! write waits for durability). The connection that received the client's frame fans a
//! node-wide request out to every shard, one frame per shard naming that shard.

use super::exec::error_code;
use super::{bump, Shard};
use crate::slotmap;
use ringkv_proto::request::ALL_SLOTS;
use ringkv_proto::ErrorCode;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What a finished admin job reports.
pub type AdminResult = Result<(), (ErrorCode, String)>;

/// An admin job's answer, pending: the offset of its optimistic DONE response in the output
/// buffer and where the job's result arrives.
pub struct AdminWait {
    pub offset: usize,
    pub done: flume::Receiver<AdminResult>,
}

/// The directory a shard's part of a checkpoint goes to, inside the checkpoint directory
/// (the same name as the shard's directory inside a data dir).
pub fn shard_dir_name(shard: u16) -> String {
    format!("shard-{shard:03}")
}

/// Checks that a CHECKPOINT path is absolute and does not exist yet. Runs on the shard
/// that received the client's frame before it fans the request out (one `stat`).
pub fn check_checkpoint_path(path: &[u8]) -> AdminResult {
    let path = Path::new(OsStr::from_bytes(path));
    if !path.is_absolute() {
        return Err((
            ErrorCode::INVALID_ARGUMENT,
            format!(
                "checkpoint path {} is not absolute (it is a path on the node's host)",
                path.display()
            ),
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(_) => Err((
            ErrorCode::INVALID_ARGUMENT,
            format!("checkpoint path {} already exists", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err((
            ErrorCode::STORAGE,
            format!("checking checkpoint path {}: {e}", path.display()),
        )),
    }
}

fn wrong_shard(shard: &Shard, asked: u16) -> AdminResult {
    if asked == shard.id {
        Ok(())
    } else {
        Err((
            ErrorCode::INVALID_ARGUMENT,
            format!("admin frame for shard {asked} reached shard {}", shard.id),
        ))
    }
}

/// Starts a job on the shard's executor; the receiver yields its result.
fn start<Fut>(job: Fut) -> flume::Receiver<AdminResult>
where
    Fut: std::future::Future<Output = AdminResult> + 'static,
{
    let (tx, rx) = flume::bounded(1);
    glommio::spawn_local(async move {
        // Nobody may be waiting any more (the client left): the job still ran.
        let _ = tx.send(job.await);
    })
    .detach();
    rx
}

/// FLUSH of this shard: every memtable written out to SSTables.
pub fn flush(
    shard: &Shard,
    asked: u16,
) -> Result<flume::Receiver<AdminResult>, (ErrorCode, String)> {
    wrong_shard(shard, asked)?;
    let db = shard.db.clone();
    let id = shard.id;
    Ok(start(async move {
        db.flush()
            .await
            .map_err(|e| (error_code(&e), format!("shard {id}: flush: {e}")))
    }))
}

/// COMPACT of this shard's data of `slot` (or of everything) down to the deepest level.
pub fn compact(
    shard: &Shard,
    asked: u16,
    slot: u16,
) -> Result<flume::Receiver<AdminResult>, (ErrorCode, String)> {
    wrong_shard(shard, asked)?;
    let db = shard.db.clone();
    let id = shard.id;
    let running = shard.admin_jobs.clone();
    running.compactions.set(running.compactions.get() + 1);
    bump(&shard.counters.manual_compactions, 1);
    Ok(start(async move {
        // Stored keys of slot s are `s (u16 big-endian) || key`: the range [s, s + 1].
        let (start, end) = if slot == ALL_SLOTS {
            (None, None)
        } else {
            let (lo, hi) = super::rebalance::slot_range(slot);
            (Some(lo), hi)
        };
        let result = db.compact_range(start.as_deref(), end.as_deref()).await;
        running.compactions.set(running.compactions.get() - 1);
        result.map_err(|e| (error_code(&e), format!("shard {id}: compact: {e}")))
    }))
}

/// CHECKPOINT of this shard into `<path>/shard-NNN`; shard 0 also writes the slot map.
pub fn checkpoint(
    shard: &Shard,
    asked: u16,
    path: &[u8],
) -> Result<flume::Receiver<AdminResult>, (ErrorCode, String)> {
    wrong_shard(shard, asked)?;
    let root = PathBuf::from(OsStr::from_bytes(path));
    let db = shard.db.clone();
    let id = shard.id;
    let map = (id == 0).then(|| (*shard.map()).clone());
    let node = shard.node.clone();
    Ok(start(async move {
        let result = checkpoint_part(root, db, id, map).await;
        let mut job = node.job();
        job.checkpoint_parts = job.checkpoint_parts.saturating_sub(1);
        result
    }))
}

async fn checkpoint_part(
    root: PathBuf,
    db: ringkv_engine::db::Db<ringkv_engine::io::DmaFs>,
    id: u16,
    map: Option<crate::slotmap::SlotMap>,
) -> AdminResult {
    {
        if let Some(map) = map {
            let dir = root.clone();
            // Blocking file I/O (create, write, fsync, rename) runs off the shard thread.
            glommio::executor()
                .spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    map.store(&dir)
                        .map_err(|e| std::io::Error::other(format!("{e:#}")))
                })
                .await
                .map_err(|e| {
                    (
                        ErrorCode::STORAGE,
                        format!(
                            "checkpoint: writing {}: {e}",
                            root.join(slotmap::FILE_NAME).display()
                        ),
                    )
                })?;
        }
        db.checkpoint(&root.join(shard_dir_name(id)))
            .await
            .map_err(|e| (error_code(&e), format!("shard {id}: checkpoint: {e}")))
    }
}

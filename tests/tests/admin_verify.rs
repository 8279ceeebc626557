//! `ringkv-admin verify` against a real node's files: clean files verify (exit 0); a byte
//! flipped in an SSTable, or in a WAL segment's record, is found, named by file and offset
//! (exit 1); putting the byte back makes the directory verify again, so the flip and nothing
//! else was what failed. Also: verify refuses a running node's data dir, and the dumps read
//! the same files.

use ringkv_client::{BatchOp, Client, ClientConfig};
use ringkv_tests::server::{admin, admin_ok, ServerOptions, ServerProcess};
use std::path::{Path, PathBuf};

fn put_range(client: &Client, from: u32, to: u32) {
    let keys: Vec<Vec<u8>> = (from..to)
        .map(|i| format!("vkey{i:08}").into_bytes())
        .collect();
    let value = vec![b'v'; 100];
    for chunk in keys.chunks(200) {
        let ops: Vec<BatchOp<'_>> = chunk
            .iter()
            .map(|k| BatchOp::Put {
                key: k,
                value: &value,
            })
            .collect();
        client.batch(&ops).expect("batch");
    }
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn verify_finds_flipped_bytes_in_an_sst_and_a_wal_segment() {
    let mut server = ServerProcess::start(ServerOptions::default());
    let client = Client::connect(server.addr(), ClientConfig::default()).unwrap();
    put_range(&client, 0, 4000);
    let addr = server.addr().to_string();
    admin_ok(&["--addr", &addr, "flush"]);
    // These stay in the WAL only: the node is killed before any flush.
    put_range(&client, 4000, 5000);
    drop(client);
    let data_dir = server.data_dir().to_path_buf();
    let dir_text = data_dir.to_str().unwrap().to_string();

    // A running node's data dir is refused (its files change under the reader).
    let (code, _, err) = admin(&["verify", "--data-dir", &dir_text]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stop the node first"), "{err}");

    server.kill();
    let out = admin_ok(&["verify", "--data-dir", &dir_text]);
    assert!(out.contains("no damage"), "{out}");

    // An SSTable of shard 0: flip a byte inside its first data block.
    let shard0 = data_dir.join("shard-000");
    let sst = files_with_suffix(&shard0, ".sst")
        .into_iter()
        .next()
        .expect("the flush left an SSTable in shard 0");
    let dump = admin_ok(&["sst-dump", sst.to_str().unwrap(), "--limit", "2"]);
    assert!(
        dump.contains("slot=") && dump.contains("key=vkey"),
        "{dump}"
    );
    flip(&sst, 100);
    let (code, out, err) = admin(&["verify", "--data-dir", &dir_text]);
    assert_eq!(
        code, 1,
        "a flipped SSTable byte went unnoticed:\n{out}\n{err}"
    );
    let sst_name = sst.file_name().unwrap().to_str().unwrap();
    assert!(
        out.contains("CORRUPT") && out.contains(sst_name) && out.contains("at offset 0"),
        "the report does not name the damaged block:\n{out}"
    );
    flip(&sst, 100);
    admin_ok(&["verify", "--data-dir", &dir_text]);

    // The WAL segment of shard 0 that holds the unflushed writes: flip a payload byte of
    // its first record.
    let wal = shard0.join("wal");
    let (segment, record_offset) = files_with_suffix(&wal, ".wal")
        .into_iter()
        .find_map(|segment| {
            let out = admin_ok(&[
                "--json",
                "wal-dump",
                segment.to_str().unwrap(),
                "--limit",
                "1",
            ]);
            let first: serde_json::Value = serde_json::from_str(out.lines().next()?).ok()?;
            let offset = first.get("offset")?.as_u64()?;
            Some((segment, offset))
        })
        .expect("a WAL segment of shard 0 holds records");
    flip(&segment, record_offset + 40);
    let (code, out, err) = admin(&["verify", "--data-dir", &dir_text]);
    assert_eq!(code, 1, "a flipped WAL byte went unnoticed:\n{out}\n{err}");
    let segment_name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        out.contains(segment_name) && out.contains(&format!("at offset {record_offset}")),
        "the report does not name the damaged record:\n{out}"
    );
    let (code, _, err) = admin(&["wal-dump", segment.to_str().unwrap()]);
    assert_eq!(code, 1, "wal-dump read a damaged record silently: {err}");
    flip(&segment, record_offset + 40);
    admin_ok(&["verify", "--data-dir", &dir_text]);

    // The repaired directory still starts and serves every key.
    server.restart();
    let client = Client::connect(server.addr(), ClientConfig::default()).unwrap();
    for i in (0..5000).step_by(97) {
        let key = format!("vkey{i:08}");
        assert_eq!(
            client.get(&key).unwrap().as_deref(),
            Some(&[b'v'; 100][..]),
            "{key}"
        );
    }
}

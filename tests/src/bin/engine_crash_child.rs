//! Child process of the engine crash test (`tests/engine_crash.rs`).
//!
//! Usage: `engine_crash_child DIR FIRST_BATCH`. Opens the database in DIR with `sync`
//! durability and small memtables (so flushes and compactions run while it is killed), then
//! writes atomic batches FIRST_BATCH, FIRST_BATCH+1, ... from several concurrent writers and
//! prints each batch number on its own line once the write is acknowledged. It runs until it
//! is killed.

use ringkv_engine::db::{Db, DbOptions, WriteBatch};
use ringkv_engine::io::DmaFs;
use ringkv_engine::wal::Durability;
use ringkv_tests::crash::{batch_keys, crash_options};
use std::cell::Cell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

const WRITERS: usize = 8;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: engine_crash_child DIR FIRST_BATCH"),
    );
    let first: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("FIRST_BATCH must be a number");
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(2 << 20)
        .make()
        .expect("executor");
    ex.run(async move {
        let fs = DmaFs::new(&dir).await.expect("data dir");
        let opts: DbOptions = crash_options(Durability::Sync);
        let db = Db::open(fs, &dir, opts).await.expect("open");
        let next = Rc::new(Cell::new(first));
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let db = db.clone();
            let next = next.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut batch = WriteBatch::new();
                loop {
                    let id = next.get();
                    next.set(id + 1);
                    batch.clear();
                    for (k, v) in batch_keys(id) {
                        batch.put(&k, &v);
                    }
                    db.write(&batch).await.expect("write");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{id}").expect("stdout");
                    out.flush().expect("stdout");
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

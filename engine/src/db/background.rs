//! Starting and stopping the shard's background tasks (flush, compaction) on their own
//! glommio task queues: flushing shares the CPU equally with writers, compaction gets a
//! smaller share so foreground latency stays low.

use super::{compact, deleter, flush, Inner};
use crate::error::{Error, Result};
use crate::io::FileSystem;
use glommio::{Latency, Shares, TaskQueueHandle};
use std::cell::RefCell;
use std::rc::Rc;

const FLUSH_SHARES: usize = 1000;
const COMPACTION_SHARES: usize = 400;

thread_local! {
    /// (executor id, flush queue, compaction queue) of this thread's executor.
    static QUEUES: RefCell<Option<(usize, TaskQueueHandle, TaskQueueHandle)>> = const { RefCell::new(None) };
}

fn queues() -> Result<(TaskQueueHandle, TaskQueueHandle)> {
    let id = glommio::executor().id();
    QUEUES.with(|q| {
        let mut q = q.borrow_mut();
        if let Some((qid, f, c)) = q.as_ref() {
            if *qid == id {
                return Ok((*f, *c));
            }
        }
        let f = glommio::executor().create_task_queue(
            Shares::Static(FLUSH_SHARES),
            Latency::NotImportant,
            "ringkv-flush",
        );
        let c = glommio::executor().create_task_queue(
            Shares::Static(COMPACTION_SHARES),
            Latency::NotImportant,
            "ringkv-compaction",
        );
        *q = Some((id, f, c));
        crate::runtime::ensure_reactor_tick();
        Ok((f, c))
    })
}

pub(crate) fn spawn<F: FileSystem>(inner: &Rc<Inner<F>>) -> Result<()> {
    let (flush_q, compaction_q) = queues()?;
    let spawn_err = |e: glommio::GlommioError<()>| {
        Error::io(
            "spawn background task",
            &inner.dir,
            std::io::Error::other(e.to_string()),
        )
    };
    let f =
        glommio::spawn_local_into(flush::flush_loop(inner.clone()), flush_q).map_err(spawn_err)?;
    let c = glommio::spawn_local_into(compact::compaction_loop(inner.clone()), compaction_q)
        .map_err(spawn_err)?;
    let d = glommio::spawn_local_into(deleter::delete_loop(inner.clone()), compaction_q)
        .map_err(spawn_err)?;
    inner.tasks.borrow_mut().extend([f, c, d]);
    inner.bg_wake.notify_all();
    Ok(())
}

pub(crate) async fn close<F: FileSystem>(inner: &Rc<Inner<F>>) -> Result<()> {
    if inner.closing.get() {
        return Ok(());
    }
    inner.pacer.release();
    let guard = inner.write_lock.lock().await;
    inner.closing.set(true);
    let wal_result = inner.wal.close().await;
    inner.bg_wake.notify_all();
    inner.bg_done.notify_all();
    inner.doomed_wake.notify_all();
    let tasks: Vec<_> = inner.tasks.borrow_mut().drain(..).collect();
    for t in tasks {
        t.await;
    }
    drop(guard);
    // A manual compaction or a checkpoint may still be installing: let it finish (it sees
    // `closing` and stops early) before the manifest is closed.
    let _compaction = inner.compaction_lock.lock().await;
    let _install = inner.install_lock.lock().await;
    flush::purge_obsolete(inner).await;
    let manifest = inner.manifest.borrow_mut().take();
    if let Some(m) = manifest {
        m.close().await?;
    }
    wal_result
}

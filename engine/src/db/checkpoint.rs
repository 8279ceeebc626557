//! Checkpoints: a consistent, openable copy of the database made of hard links.
//!
//! Flush first (so every acknowledged write is in an SSTable), then, with version installs
//! held off, hard-link every live SSTable into the target and write a manifest describing
//! exactly those files. SSTables are immutable, so links are as good as copies.

use super::{flush, sst_name, sst_path, Inner};
use crate::error::{Error, Result};
use crate::io::FileSystem;
use std::path::Path;
use std::rc::Rc;

pub(crate) async fn checkpoint<F: FileSystem>(inner: &Rc<Inner<F>>, target: &Path) -> Result<()> {
    if inner.fs.exists(target).await? {
        return Err(Error::InvalidArgument(format!(
            "checkpoint target {target:?} already exists"
        )));
    }
    flush::flush_all(inner).await?;
    let _guard = inner.install_lock.lock().await;
    let state = inner.state.borrow().clone();
    inner.fs.create_dir_all(target).await?;
    for number in state.files.keys() {
        inner
            .fs
            .hard_link(
                &sst_path(&inner.dir, *number),
                &target.join(sst_name(*number)),
            )
            .await?;
    }
    let manifest = inner.manifest.borrow_mut().take();
    let Some(manifest) = manifest else {
        return Err(Error::Closed);
    };
    let mut copy = state;
    copy.wal_min_segment = 1;
    let written = manifest.write_copy(target, &copy).await;
    *inner.manifest.borrow_mut() = Some(manifest);
    written?;
    inner.fs.sync_dir(target).await
}

//! Single-threaded wake-ups for a shard's tasks: [`Notify`] (a generation counter plus a
//! waker list) and [`LocalMutex`], an async mutual-exclusion flag built on it. Used by the WAL
//! (group commit) and the database (flush, compaction, stalls). Nothing here blocks a thread.
//!
//! A waiter reads [`Notify::generation`], checks its condition, and if it must wait awaits
//! [`Notify::notified`] with the generation it read; [`Notify::notify_all`] bumps the
//! generation and wakes every registered waiter. Because everything runs on one thread there
//! is no window between the check and the registration. Each pending waiter holds at most one
//! slot in the list (re-polls replace their own waker), and the list is drained on every
//! notification, so it is bounded by the number of concurrent waiters.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every waiter whenever some shared state changed.
#[derive(Default, Debug)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    /// The current generation; pass it to [`notified`](Self::notified).
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Bumps the generation and wakes every waiter.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let mut wakers = self.wakers.borrow_mut();
        for waker in wakers.drain(..) {
            waker.wake();
        }
    }

    /// Resolves at the first `notify_all` after this call.
    pub fn wait(&self) -> Notified<'_> {
        self.notified(self.generation())
    }

    /// Resolves once the generation differs from `seen`.
    pub fn notified(&self, seen: u64) -> Notified<'_> {
        Notified {
            notify: self,
            seen,
            slot: None,
        }
    }
}

/// Future returned by [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
    seen: u64,
    /// Index of our waker in the list while the generation is still `seen`.
    slot: Option<usize>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        match self.slot {
            Some(slot) if slot < wakers.len() => {
                if !wakers[slot].will_wake(cx.waker()) {
                    wakers[slot] = cx.waker().clone();
                }
            }
            _ => {
                wakers.push(cx.waker().clone());
                let slot = wakers.len() - 1;
                drop(wakers);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

/// An async mutex for one thread (the write lock, one compaction at a time). Waiters are
/// served first come, first served, and a release wakes exactly one of them (glommio's
/// semaphore with one permit), so N queued writers cost O(N) wake-ups, not O(N^2).
pub struct LocalMutex {
    permits: glommio::sync::Semaphore,
}

impl Default for LocalMutex {
    fn default() -> Self {
        LocalMutex {
            permits: glommio::sync::Semaphore::new(1),
        }
    }
}

impl std::fmt::Debug for LocalMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMutex")
            .field("free", &(self.permits.available() > 0))
            .finish()
    }
}

/// Releases the [`LocalMutex`] when dropped.
pub struct LocalGuard<'a> {
    _permit: glommio::sync::Permit<'a>,
}

impl LocalMutex {
    /// Waits until the mutex is free, then takes it.
    pub async fn lock(&self) -> LocalGuard<'_> {
        // The semaphore is private and never closed, the only way acquiring can fail.
        let permit = self
            .permits
            .acquire_permit(1)
            .await
            .expect("LocalMutex semaphore is never closed");
        LocalGuard { _permit: permit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn wal_notify_wakes_waiters_once_per_generation(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()?
            .run(async {
                let notify = Rc::new(Notify::default());
                let woken = Rc::new(Cell::new(0));
                let mut tasks = Vec::new();
                for _ in 0..10 {
                    let (notify, woken) = (notify.clone(), woken.clone());
                    tasks.push(glommio::spawn_local(async move {
                        let seen = notify.generation();
                        notify.notified(seen).await;
                        woken.set(woken.get() + 1);
                    }));
                }
                glommio::executor().yield_now().await;
                assert_eq!(woken.get(), 0);
                assert_eq!(notify.wakers.borrow().len(), 10);
                notify.notify_all();
                for task in tasks {
                    task.await;
                }
                assert_eq!(woken.get(), 10);
                assert!(notify.wakers.borrow().is_empty());
            });
        Ok(())
    }
}

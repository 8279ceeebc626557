//! Single-threaded wake-ups for a shard's tasks: [`Notify`] (a generation counter plus a
//! waker list) and [`LocalMutex`], an async mutual-exclusion flag built on it. Used by the WAL
//! (group commit) and the database (flush, compaction, stalls). Nothing here blocks a thread.
//!
//! A waiter reads [`Notify::generation`], checks its condition, and if it must wait awaits
//! [`Notify::notified`] with the generation it read; [`Notify::notify_all`] bumps the
//! generation and wakes every registered waiter. Because everything runs on one thread there
//! is no window between the check and the registration.
//!
//! Bound: the waiter list holds one slot per *live* pending waiter. Re-polls replace their
//! own waker, a notification drains the list, and a waiter dropped before it was notified
//! (the losing side of a `select`/`or`, a cancelled task) frees its slot. Without that last
//! rule a waiter raced against something that usually wins (a socket read against the
//! shutdown notice) would leave one waker clone behind per race; besides growing the list,
//! each clone holds a reference on its task, and glommio counts a task's references in an
//! i16, so a long-lived connection would eventually overflow it and never be woken again.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every waiter whenever some shared state changed.
#[derive(Default, Debug)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Waiters>,
}

/// Registered wakers by slot; `None` slots are free and listed in `free`.
#[derive(Default, Debug)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Notify {
    /// The current generation; pass it to [`notified`](Self::notified).
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Bumps the generation and wakes every waiter.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let mut slots = {
            let mut waiters = self.waiters.borrow_mut();
            waiters.free.clear();
            std::mem::take(&mut waiters.slots)
        };
        // Woken outside the borrow: a waker may run code that registers a new waiter.
        for waker in slots.drain(..).flatten() {
            waker.wake();
        }
        let mut waiters = self.waiters.borrow_mut();
        if waiters.slots.is_empty() {
            // Keep the allocation for the next round of waiters.
            waiters.slots = slots;
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

    /// Waiters registered and neither notified nor dropped yet.
    pub fn waiter_count(&self) -> usize {
        let waiters = self.waiters.borrow();
        waiters.slots.len() - waiters.free.len()
    }
}

/// Future returned by [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
    seen: u64,
    /// Our slot in the waiter list while the generation is still `seen` (a notification
    /// drains the list, after which the slot means nothing).
    slot: Option<usize>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            self.slot = None;
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        match self.slot {
            // No notification since we registered, so the slot is still ours.
            Some(slot) => match &mut waiters.slots[slot] {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                entry => *entry = Some(cx.waker().clone()),
            },
            None => {
                let slot = match waiters.free.pop() {
                    Some(slot) => {
                        waiters.slots[slot] = Some(cx.waker().clone());
                        slot
                    }
                    None => {
                        waiters.slots.push(Some(cx.waker().clone()));
                        waiters.slots.len() - 1
                    }
                };
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        if self.notify.generation.get() != self.seen {
            return;
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        waiters.slots[slot] = None;
        waiters.free.push(slot);
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
                assert_eq!(notify.waiter_count(), 10);
                notify.notify_all();
                for task in tasks {
                    task.await;
                }
                assert_eq!(woken.get(), 10);
                assert_eq!(notify.waiter_count(), 0);
            });
        Ok(())
    }
    /// A waiter that loses a race (here against a yield) and is dropped takes its waker out
    /// of the list. Before this held, each lost race left a waker clone behind, so the list
    /// grew without bound and the task's reference count (an i16 in glommio) overflowed
    /// after 32,767 races: glommio panicked inside the wake-up and the task hung for good.
    #[test]
    fn dropped_waiters_leave_no_waker_behind() -> std::result::Result<(), Box<dyn std::error::Error>>
    {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()?
            .run(async {
                let notify = Notify::default();
                for _ in 0..40_000 {
                    futures_lite::future::or(glommio::executor().yield_now(), notify.wait()).await;
                }
                assert_eq!(notify.waiter_count(), 0);
                assert!(notify.waiters.borrow().slots.len() <= 1, "slots are reused");
            });
        Ok(())
    }

    /// Dropping a waiter that was registered before a notification must not free the slot
    /// a newer waiter took after it.
    #[test]
    fn a_stale_waiter_dropped_late_does_not_unregister_a_new_one() {
        let notify = Notify::default();
        let waker = futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }));
        let mut cx = Context::from_waker(&waker);
        let mut old = Box::pin(notify.wait());
        assert!(old.as_mut().poll(&mut cx).is_pending());
        notify.notify_all();
        let mut new = Box::pin(notify.wait());
        assert!(new.as_mut().poll(&mut cx).is_pending());
        assert_eq!(notify.waiter_count(), 1);
        drop(old);
        assert_eq!(
            notify.waiter_count(),
            1,
            "the new waiter is still registered"
        );
        notify.notify_all();
        assert!(new.as_mut().poll(&mut cx).is_ready());
        drop(new);
        assert_eq!(notify.waiter_count(), 0);
    }
}

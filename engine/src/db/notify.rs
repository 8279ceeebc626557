//! Single-threaded wake-ups for the shard's tasks: a `Notify` that wakes every waiter, and a
//! `LocalMutex` built on it. Nothing here blocks the thread; waiting is an `.await`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting on it. A waiter created before `notify_all` always completes.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    /// Wakes all current waiters.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// A future that completes at the next `notify_all` after this call.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            notify: self,
            generation: self.generation.get(),
        }
    }
}

/// See [`Notify::wait`].
pub struct Wait<'a> {
    notify: &'a Notify,
    generation: u64,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// An async mutual-exclusion flag for one thread (e.g. one compaction at a time).
#[derive(Default)]
pub struct LocalMutex {
    held: Cell<bool>,
    released: Notify,
}

/// Releases the [`LocalMutex`] when dropped.
pub struct LocalGuard<'a> {
    mutex: &'a LocalMutex,
}

impl LocalMutex {
    /// Waits until the mutex is free, then takes it.
    pub async fn lock(&self) -> LocalGuard<'_> {
        loop {
            if !self.held.get() {
                self.held.set(true);
                return LocalGuard { mutex: self };
            }
            self.released.wait().await;
        }
    }
}

impl Drop for LocalGuard<'_> {
    fn drop(&mut self) {
        self.mutex.held.set(false);
        self.mutex.released.notify_all();
    }
}

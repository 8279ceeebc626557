//! What the engine needs from the glommio executor it runs on.
//!
//! glommio 0.9 can park its executor although a task queue is still runnable: when the
//! preemption flag is already set as the scheduler loop starts (the thread lost its core for
//! longer than the preemption timer right after polling its rings), the loop reports "nothing
//! ran" and the executor sleeps in `io_uring_enter` until some completion arrives (glommio
//! later fixed this by not parking in that case). With no I/O and no timer pending, that sleep
//! never ends: the shard hangs. Two guards, started once per executor by
//! [`ensure_reactor_tick`]:
//! - a tick task keeps a short timer armed, which ends most such sleeps within one tick;
//! - the tick also beats a heartbeat that one process-wide watchdog thread watches. When the
//!   tick task was itself among the tasks left runnable, no timer is armed; the watchdog then
//!   sees the heartbeat stop and sends the executor's thread a signal, whose no-op handler
//!   makes `io_uring_enter` return `EINTR` (glommio treats that as a wake-up).
//!
//! `DmaFs::new` and `Db::open` call it, so it runs before the engine's first I/O; a shard
//! runtime may call it even earlier.

use std::cell::Cell;
use std::time::Duration;

/// Period of the reactor tick.
pub const REACTOR_TICK: Duration = Duration::from_millis(2);

thread_local! {
    /// Id of the executor on this thread that already has a tick task.
    static TICKING: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Starts the reactor tick on the current glommio executor, once per executor.
pub fn ensure_reactor_tick() {
    let id = glommio::executor().id();
    if TICKING.with(|t| t.get()) == Some(id) {
        return;
    }
    TICKING.with(|t| t.set(Some(id)));
    let watched = watchdog::watch();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(REACTOR_TICK).await;
            watched.beat();
        }
    })
    .detach();
}

/// Signals the watchdog has sent to executors whose tick had stopped, since the process
/// started.
pub fn watchdog_wakes() -> u64 {
    watchdog::WAKES.load(std::sync::atomic::Ordering::Relaxed)
}

mod watchdog {
    use super::REACTOR_TICK;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, Once};
    use std::time::{Duration, Instant};

    /// An executor whose tick has not advanced for this long (three ticks) gets a signal.
    /// A busy executor also gets one when a task queue runs longer than this without the
    /// tick's turn coming (the server's preemption timer is 10 ms): the handler does
    /// nothing, and a system call it interrupts returns EINTR, which std and glommio retry
    /// or treat as a wake-up. A temporary build counted 392-716 signals over half-load runs
    /// of about 40 s (fill, settle and the 12 s measured run).
    const STALL: Duration = Duration::from_millis(3 * REACTOR_TICK.as_millis() as u64);

    /// The wake-up signal. Its default action is to ignore it, so a stray one harms no
    /// thread that is not ours.
    const SIGNAL: libc::c_int = libc::SIGURG;

    pub(super) static WAKES: AtomicU64 = AtomicU64::new(0);

    struct Entry {
        tid: libc::pid_t,
        beat: Arc<AtomicU64>,
        seen: u64,
        since: Instant,
    }

    static WATCHED: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
    static START: Once = Once::new();

    /// An executor's registration; dropping it (with the tick task, when the executor
    /// ends) takes the executor off the watch list.
    pub(super) struct Watched {
        tid: libc::pid_t,
        beat: Arc<AtomicU64>,
    }

    impl Watched {
        pub(super) fn beat(&self) {
            self.beat.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Drop for Watched {
        fn drop(&mut self) {
            let mut list = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|e| e.tid != self.tid);
        }
    }

    /// Puts the calling thread (an executor's) on the watch list, starting the watchdog
    /// thread and installing the signal handler the first time.
    pub(super) fn watch() -> Watched {
        START.call_once(start);
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let beat = Arc::new(AtomicU64::new(0));
        WATCHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Entry {
                tid,
                beat: beat.clone(),
                seen: 0,
                since: Instant::now(),
            });
        Watched { tid, beat }
    }

    extern "C" fn on_signal(_: libc::c_int) {}

    fn start() {
        // SAFETY: a zeroed sigaction is valid; the handler does nothing, so it is
        // async-signal-safe. No SA_RESTART: a sleeping io_uring_enter must return EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(SIGNAL, &action, std::ptr::null_mut());
        }
        // Without the thread (the OS refused one) the tick task alone still guards most
        // mis-parks; nothing else depends on the watchdog.
        let _ = std::thread::Builder::new()
            .name("ringkv-watchdog".into())
            .spawn(|| loop {
                std::thread::sleep(REACTOR_TICK);
                scan();
            });
    }

    fn scan() {
        let now = Instant::now();
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let mut list = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
        list.retain_mut(|e| {
            let beat = e.beat.load(Ordering::Relaxed);
            if beat != e.seen {
                e.seen = beat;
                e.since = now;
                return true;
            }
            if now.duration_since(e.since) < STALL {
                return true;
            }
            e.since = now;
            // SAFETY: tgkill with our own pid only reaches our own threads.
            let sent = unsafe { libc::syscall(libc::SYS_tgkill, pid, e.tid, SIGNAL) };
            if sent == 0 {
                WAKES.fetch_add(1, Ordering::Relaxed);
                true
            } else {
                // The thread is gone (its executor ended without dropping the tick task).
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A registered thread whose heartbeat stops, asleep in a system call, is woken by the
    /// watchdog's signal: the call returns EINTR. (A parked glommio executor sleeps the same
    /// way, in io_uring_enter.)
    #[test]
    fn watchdog_interrupts_a_thread_whose_tick_stopped() {
        // Read before the thread exists: on a loaded machine the watchdog may signal it
        // before this thread runs again.
        let before = watchdog_wakes();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _watched = watchdog::watch();
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: fds has room for the two descriptors pipe() writes.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let mut byte = 0u8;
            // Nothing is ever written to the pipe: only a signal ends this read.
            // SAFETY: reads at most one byte into `byte`.
            let n = unsafe { libc::read(fds[0], (&mut byte as *mut u8).cast(), 1) };
            let err = std::io::Error::last_os_error();
            // SAFETY: both descriptors came from pipe() above and are closed once.
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
            let _ = tx.send((n, err.raw_os_error()));
        });
        let (n, errno) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the watchdog never woke the stalled thread");
        assert_eq!((n, errno), (-1, Some(libc::EINTR)));
        assert!(watchdog_wakes() > before);
    }
}

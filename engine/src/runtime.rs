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

    /// An executor whose tick has not advanced for this long gets a signal (three ticks:
    /// a busy executor may run a task queue for up to its preemption timer before the
    /// tick's turn comes).
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

/// CPU time a background task (flush, compaction) may use before it lets the executor poll
/// its rings.
///
/// glommio runs a task queue until its tasks are all waiting or the preemption timer fires
/// (10 ms on the server), and reaps socket and disk completions only between such runs. A
/// flush or a compaction that always has CPU work would therefore hold a shard's client
/// connections unserved for a whole timer period, twice over when both run: a probe task
/// on a shard at half load saw its 0.5 ms sleeps end 10-25 ms late several times a second.
pub const BACKGROUND_SLICE: Duration = Duration::from_micros(500);

/// How long a background task steps aside once its slice is spent: long enough that the
/// timer has not expired when the task first polls it, so the task really leaves its queue.
const STEP_ASIDE: Duration = Duration::from_micros(20);

/// A background task's CPU slice: call [`Slice::pause_if_spent`] between units of work
/// (a few hundred microseconds at most apart).
pub struct Slice {
    started: std::time::Instant,
}

impl Default for Slice {
    fn default() -> Self {
        Self::new()
    }
}

impl Slice {
    pub fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
        }
    }

    /// Once [`BACKGROUND_SLICE`] has passed since the slice began, sleeps for a moment.
    /// The task then leaves its queue, the executor runs what else is ready and polls its
    /// rings (new requests, I/O completions), and the task resumes at the next poll with a
    /// new slice. Returns whether it paused.
    pub async fn pause_if_spent(&mut self) -> bool {
        if self.started.elapsed() < BACKGROUND_SLICE {
            return false;
        }
        glommio::timer::sleep(STEP_ASIDE).await;
        self.started = std::time::Instant::now();
        true
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
            let _ = tx.send((n, err.raw_os_error()));
        });
        let before = watchdog_wakes();
        let (n, errno) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the watchdog never woke the stalled thread");
        assert_eq!((n, errno), (-1, Some(libc::EINTR)));
        assert!(watchdog_wakes() > before);
    }

    /// A background task that always has CPU work but pauses per [`Slice`] lets a
    /// foreground timer task run between its slices, not only when the (here 100 ms)
    /// preemption timer fires.
    #[test]
    fn background_slices_let_the_executor_poll_between_them() {
        let ticks = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 << 10)
            .preempt_timer(Duration::from_millis(100))
            .spawn(|| async {
                let q = glommio::executor().create_task_queue(
                    glommio::Shares::Static(1000),
                    glommio::Latency::NotImportant,
                    "busy",
                );
                let stop = std::rc::Rc::new(Cell::new(false));
                let busy_stop = stop.clone();
                let busy = glommio::spawn_local_into(
                    async move {
                        let mut slice = Slice::new();
                        let mut x = 0u64;
                        while !busy_stop.get() {
                            for i in 0..1000u64 {
                                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                            }
                            slice.pause_if_spent().await;
                        }
                        x
                    },
                    q,
                )
                .unwrap();
                let mut ticks = 0;
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_millis(300) {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                    ticks += 1;
                }
                stop.set(true);
                busy.await;
                ticks
            })
            .unwrap()
            .join()
            .unwrap();
        // Without the pauses the timer task would run about once per 100 ms timer period
        // (3-4 times); with them it runs close to once per millisecond.
        assert!(ticks >= 30, "the foreground timer ran only {ticks} times in 300 ms");
    }
}

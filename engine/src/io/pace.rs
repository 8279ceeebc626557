//! Paces a shard's background writes (flushed and compacted tables) to a byte rate.
//!
//! Why: a WAL commit's fdatasync makes the device persist everything written before it, by
//! any writer. Tables written as fast as the disk takes them (800-900 MB/s here) sit in its
//! cache and queue in front of the next commit: bench/scripts/sync-under-writes.py measured
//! a commit p99 of about 9 ms beside unpaced 1 MiB writes and about 1.2 ms beside the same
//! writes paced to 150 MB/s. A shard's flushes and compactions therefore ask the pacer before
//! each chunk they write (RocksDB's rate limiter does the same job).
//!
//! How: each write class has a virtual clock, the time at which its next write may start.
//! A grant of `n` bytes starts at `max(now, clock)` and moves the clock on by `n / rate`, so
//! writes are spread evenly and idle time is not saved up as a burst. Flushes come first
//! (writers wait for them once memtables are full): a flush grant also moves the compaction
//! clock on, so compaction yields the bandwidth a flush uses, while compaction grants never
//! delay a flush. While the database says a flush is urgent (writers would soon have to slow
//! down for it, see [`WritePacer::set_flush_urgent`]) flush writes are not delayed at all;
//! they still push compaction back. Once released ([`WritePacer::release`], at shutdown) no
//! write waits; a write already waiting notices within [`SLEEP_STEP`].

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Who is writing; flushes are served ahead of compactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteClass {
    /// A memtable flush (writers stall when these fall behind).
    Flush,
    /// A compaction.
    Compaction,
}

/// Shortest wait the pacer sleeps for; a grant due sooner goes at once (a timer costs more
/// than the smoothing it buys, and glommio's timers are no finer than this anyway).
const SLEEP_MIN: Duration = Duration::from_micros(200);

/// Longest single sleep of a waiting write, so that it notices a release or an urgent flush.
const SLEEP_STEP: Duration = Duration::from_millis(20);

/// One shard's background write budget. Lives on the shard's thread.
#[derive(Debug)]
pub struct WritePacer {
    /// Bytes per second; 0 paces nothing.
    bytes_per_sec: u64,
    flush_next: Cell<Instant>,
    compaction_next: Cell<Instant>,
    /// Flush writes go at once (still charged to compaction).
    flush_urgent: Cell<bool>,
    /// Nothing waits any more (the database is shutting down).
    released: Cell<bool>,
    /// Total time writes waited for their grant, in microseconds.
    waited_micros: Cell<u64>,
}

impl WritePacer {
    /// A pacer allowing `bytes_per_sec` (0: no pacing).
    pub fn new(bytes_per_sec: u64) -> Self {
        let now = Instant::now();
        WritePacer {
            bytes_per_sec,
            flush_next: Cell::new(now),
            compaction_next: Cell::new(now),
            flush_urgent: Cell::new(false),
            released: Cell::new(false),
            waited_micros: Cell::new(0),
        }
    }

    /// Total time writes have waited for their grant so far.
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_micros.get())
    }

    /// Marks flushes urgent (writers are about to be slowed down for want of memtable space)
    /// or not.
    pub fn set_flush_urgent(&self, urgent: bool) {
        self.flush_urgent.set(urgent);
    }

    /// Lets every write, waiting or to come, go at once from now on.
    pub fn release(&self) {
        self.released.set(true);
    }

    /// True if a write of `class` should stop waiting for its slot.
    fn go_now(&self, class: WriteClass) -> bool {
        self.released.get() || (class == WriteClass::Flush && self.flush_urgent.get())
    }

    /// Books `bytes` for `class` at `now` and returns when that write may start.
    fn grant(&self, class: WriteClass, bytes: usize, now: Instant) -> Instant {
        if self.bytes_per_sec == 0 || self.released.get() {
            return now;
        }
        let nanos = (bytes as u128 * 1_000_000_000 / self.bytes_per_sec as u128) as u64;
        let cost = Duration::from_nanos(nanos);
        match class {
            WriteClass::Flush => {
                let start = if self.flush_urgent.get() {
                    now
                } else {
                    self.flush_next.get().max(now)
                };
                self.flush_next.set(start + cost);
                let behind = self.compaction_next.get().max(now);
                self.compaction_next.set(behind + cost);
                start
            }
            WriteClass::Compaction => {
                let start = self.compaction_next.get().max(now);
                self.compaction_next.set(start + cost);
                start
            }
        }
    }

    /// Waits until `bytes` of `class` may be written.
    pub async fn admit(&self, class: WriteClass, bytes: usize) {
        let now = Instant::now();
        let start = self.grant(class, bytes, now);
        if start.saturating_duration_since(now) < SLEEP_MIN {
            return;
        }
        loop {
            let left = start.saturating_duration_since(Instant::now());
            if left.is_zero() || self.go_now(class) {
                break;
            }
            glommio::timer::sleep(left.min(SLEEP_STEP)).await;
        }
        let waited = Instant::now().saturating_duration_since(now).as_micros() as u64;
        self.waited_micros.set(self.waited_micros.get() + waited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn on_executor(f: impl std::future::Future<Output = ()>) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("executor")
            .run(f);
    }

    #[test]
    fn unpaced_grants_at_once() {
        let p = WritePacer::new(0);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(p.grant(WriteClass::Compaction, 1 << 20, now), now);
        }
    }

    #[test]
    fn grants_are_spaced_by_size_over_rate() {
        let p = WritePacer::new(100 * MB);
        let t0 = Instant::now();
        let starts: Vec<_> = (0..4)
            .map(|_| p.grant(WriteClass::Compaction, 1_000_000, t0))
            .collect();
        for (i, s) in starts.iter().enumerate() {
            assert_eq!(*s - t0, Duration::from_millis(10 * i as u64));
        }
    }

    #[test]
    fn idle_time_is_not_saved_up() {
        let p = WritePacer::new(100 * MB);
        let t0 = Instant::now();
        p.grant(WriteClass::Flush, 1_000_000, t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(p.grant(WriteClass::Flush, 1_000_000, later), later);
        assert_eq!(
            p.grant(WriteClass::Flush, 1_000_000, later),
            later + Duration::from_millis(10)
        );
    }

    #[test]
    fn flushes_push_compaction_back_but_not_the_reverse() {
        let p = WritePacer::new(100 * MB);
        let t0 = Instant::now();
        // Compaction books 50 ms ahead.
        for _ in 0..5 {
            p.grant(WriteClass::Compaction, 1_000_000, t0);
        }
        // A flush still goes at once, and then at its own pace.
        assert_eq!(p.grant(WriteClass::Flush, 1_000_000, t0), t0);
        assert_eq!(
            p.grant(WriteClass::Flush, 1_000_000, t0),
            t0 + Duration::from_millis(10)
        );
        // Compaction's next slot moved back by the 20 ms the flush took.
        assert_eq!(
            p.grant(WriteClass::Compaction, 1_000_000, t0),
            t0 + Duration::from_millis(70)
        );
    }

    #[test]
    fn urgent_flushes_go_at_once_and_still_push_compaction_back() {
        let p = WritePacer::new(100 * MB);
        let t0 = Instant::now();
        p.set_flush_urgent(true);
        for _ in 0..3 {
            assert_eq!(p.grant(WriteClass::Flush, 1_000_000, t0), t0);
        }
        assert_eq!(
            p.grant(WriteClass::Compaction, 1_000_000, t0),
            t0 + Duration::from_millis(30)
        );
        // Paced again: the next flush write waits for the slot after the last urgent one.
        p.set_flush_urgent(false);
        assert_eq!(
            p.grant(WriteClass::Flush, 1_000_000, t0),
            t0 + Duration::from_millis(10)
        );
        assert_eq!(
            p.grant(WriteClass::Flush, 1_000_000, t0),
            t0 + Duration::from_millis(20)
        );
    }

    #[test]
    fn release_frees_waiting_and_later_writes() {
        on_executor(async {
            let p = std::rc::Rc::new(WritePacer::new(MB));
            // Books 10 s ahead: the next compaction write would wait that long.
            p.grant(WriteClass::Compaction, 10_000_000, Instant::now());
            let waiter = {
                let p = p.clone();
                glommio::spawn_local(async move {
                    let t0 = Instant::now();
                    p.admit(WriteClass::Compaction, 4096).await;
                    t0.elapsed()
                })
            };
            glommio::timer::sleep(Duration::from_millis(50)).await;
            p.release();
            let waited = waiter.await;
            assert!(waited < Duration::from_secs(2), "waited {waited:?}");
            let now = Instant::now();
            assert_eq!(p.grant(WriteClass::Compaction, 10_000_000, now), now);
        });
    }

    #[test]
    fn admit_sleeps_for_its_slot() {
        on_executor(async {
            let p = WritePacer::new(10 * MB);
            let t0 = Instant::now();
            // 5 x 100 kB at 10 MB/s: the last starts 40 ms in.
            for _ in 0..5 {
                p.admit(WriteClass::Compaction, 100_000).await;
            }
            let took = t0.elapsed();
            assert!(took >= Duration::from_millis(40), "took {took:?}");
            assert!(p.waited() >= Duration::from_millis(35), "{:?}", p.waited());
        });
    }
}

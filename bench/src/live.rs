//! The live display of `ringkv-bench run`: once a second, the throughput, p99 and errors of
//! the second just past, merged over the generator threads. On a terminal it is one line
//! redrawn in place (a progress line); otherwise a line a second. It goes to stderr, so
//! stdout keeps only the results. Every second is also kept for the report's timeline.

use crate::driver::Tick;
use crate::latency::new_histogram;
use hdrhistogram::Histogram;
use std::io::{IsTerminal, Write};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

/// One second of a workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Second {
    /// Seconds since the workload started (end of this interval).
    pub t: f64,
    pub ops_per_sec: f64,
    pub p99_us: f64,
    pub errors: u64,
}

pub struct Live {
    name: String,
    started: Instant,
    terminal: bool,
    ops: u64,
    errors: u64,
    errors_total: u64,
    histogram: Histogram<u64>,
    interval_start: Instant,
    timeline: Vec<Second>,
}

impl Live {
    pub fn new(name: &str, started: Instant) -> Self {
        Live {
            name: name.to_string(),
            started,
            terminal: std::io::stderr().is_terminal(),
            ops: 0,
            errors: 0,
            errors_total: 0,
            histogram: new_histogram(),
            interval_start: started,
            timeline: Vec::new(),
        }
    }

    /// Shows progress until every thread has finished.
    pub fn follow<T>(
        &mut self,
        ticks: &flume::Receiver<Tick>,
        threads: &[std::io::Result<ScopedJoinHandle<'_, T>>],
    ) {
        loop {
            let finished = threads
                .iter()
                .all(|h| h.as_ref().map_or(true, |h| h.is_finished()));
            if finished {
                break;
            }
            if let Ok(tick) = ticks.recv_timeout(Duration::from_millis(50)) {
                self.add(tick);
            }
            if self.interval_start.elapsed() >= Duration::from_secs(1) {
                self.show();
            }
        }
        if self.terminal {
            eprintln!();
        }
    }

    /// Takes in what the threads reported last.
    pub fn drain(&mut self, ticks: &flume::Receiver<Tick>) {
        while let Ok(tick) = ticks.try_recv() {
            self.add(tick);
        }
        if self.ops > 0 || self.errors > 0 {
            self.close_interval();
        }
    }

    fn add(&mut self, tick: Tick) {
        self.ops += tick.ops;
        self.errors += tick.errors;
        let _ = self.histogram.add(&tick.histogram);
    }

    fn close_interval(&mut self) -> Second {
        let now = Instant::now();
        let seconds = now
            .duration_since(self.interval_start)
            .as_secs_f64()
            .max(1e-3);
        self.errors_total += self.errors;
        let second = Second {
            t: now.duration_since(self.started).as_secs_f64(),
            ops_per_sec: self.ops as f64 / seconds,
            p99_us: if self.histogram.is_empty() {
                0.0
            } else {
                self.histogram.value_at_quantile(0.99) as f64 / 1000.0
            },
            errors: self.errors,
        };
        self.timeline.push(second.clone());
        self.ops = 0;
        self.errors = 0;
        self.histogram.reset();
        self.interval_start = now;
        second
    }

    fn show(&mut self) {
        let s = self.close_interval();
        let line = format!(
            "[{:>6.1}s] {:<11} {:>11.0} ops/s  p99 {:>9.0}us  errors {}",
            s.t, self.name, s.ops_per_sec, s.p99_us, self.errors_total
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    pub fn timeline(&self) -> Vec<Second> {
        self.timeline.clone()
    }
}

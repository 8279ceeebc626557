//! Answers: reading the connections a poll found ready, then timing and counting each
//! answered frame (each put of a BATCH frame from its own due time) and judging read-backs
//! under `--verify`.

use super::{Driver, Frame, Op};
use crate::keys::make_key;
use crate::latency::record_n;
use crate::mix::OpKind;
use crate::verify::{judge, Verdict};
use crate::wire::Outcome;
use anyhow::{anyhow, Result};
use std::time::Instant;

impl Driver<'_> {
    /// Receives the answers on the connections the last poll found ready (one read each,
    /// then whatever that read brought); returns how many.
    pub(super) fn collect(&mut self) -> Result<usize> {
        let mut got = 0;
        let mut now = None;
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        for i in 0..self.fds.len() {
            if self.fds[i].revents == 0 {
                continue;
            }
            let (s, wire) = self.fd_owner[i];
            if touched.last() != Some(&s) {
                touched.push(s);
            }
            {
                let mut first = true;
                loop {
                    let answer = if first {
                        self.sessions[s].wires[wire].try_recv()?
                    } else {
                        self.sessions[s].wires[wire].try_recv_buffered()?
                    };
                    first = false;
                    let Some((id, outcome)) = answer else {
                        break;
                    };
                    let now = *now.get_or_insert_with(Instant::now);
                    self.complete(s, wire, id, outcome, now)?;
                    got += 1;
                }
            }
        }
        // Read-modify-writes may have queued their writes.
        for &s in &touched {
            for wire in &mut self.sessions[s].wires {
                wire.flush()?;
            }
        }
        self.touched = touched;
        Ok(got)
    }

    fn complete(
        &mut self,
        s: usize,
        wire: usize,
        id: u64,
        outcome: Outcome,
        now: Instant,
    ) -> Result<()> {
        let frame = self.sessions[s].in_flight[wire]
            .remove(id)
            .ok_or_else(|| anyhow!("an answer to unknown request id {id}"))?;
        if frame.kind == OpKind::Rmw && !frame.rmw_write && !matches!(outcome, Outcome::Error(_)) {
            // The read answered: now the write, still timed from the read's due time.
            let op = Op {
                kind: OpKind::Rmw,
                index: frame.index,
                due: frame.due,
                scan_len: 0,
            };
            let (id, bytes) = self.send_puts(s, wire, &[op])?;
            self.sessions[s].in_flight[wire].insert(
                id,
                Frame {
                    rmw_write: true,
                    bytes,
                    ..frame
                },
            )?;
            return Ok(());
        }
        if let Some(expected) = self.plan.check {
            self.check(frame.index, &outcome, expected);
        }
        let error = matches!(outcome, Outcome::Error(_));
        if let Outcome::Error(message) = &outcome {
            if self.result.errors.iter().sum::<u64>() == 0 {
                eprintln!("server error: {message}");
            }
        }
        let ops = frame.puts.len().max(1) as u64;
        self.tick_ops += ops;
        if error {
            self.tick_errors += ops;
        }
        let measured = frame.due >= self.plan.measure_from;
        if frame.puts.is_empty() {
            self.account(frame.kind, frame.due, 1, now, measured, error);
        } else {
            // Puts of one kind due at one time (a closed-loop frame's are) go in at once.
            for run in frame
                .puts
                .chunk_by(|a, b| a.due == b.due && a.kind == b.kind)
            {
                let n = run.len() as u64;
                self.account(run[0].kind, run[0].due, n, now, measured, error);
            }
            let mut spare = frame.puts;
            spare.clear();
            self.spare_batches.push(spare);
        }
        if !measured {
            return Ok(());
        }
        self.result.last = Some(now);
        let key_size = self.plan.load.key_size as u64;
        let bytes = match outcome {
            Outcome::Missing => {
                self.result.not_found += 1;
                0
            }
            Outcome::Value { len, .. } => key_size + len as u64,
            _ => frame.bytes,
        };
        // Inserts' bytes are counted with the puts of their frame.
        self.result.bytes[frame.kind.index()] += bytes;
        Ok(())
    }

    /// Counts `n` operations of `kind` due at `due` and answered at `now`: in the live
    /// line's histogram, and when `measured` (due after the warm-up) in the result's latency
    /// histogram, operations and (`error`) errors.
    fn account(
        &mut self,
        kind: OpKind,
        due: Instant,
        n: u64,
        now: Instant,
        measured: bool,
        error: bool,
    ) {
        let latency = now.saturating_duration_since(due);
        record_n(&mut self.tick_histogram, latency, n);
        if measured {
            let i = kind.index();
            record_n(&mut self.result.histograms[i], latency, n);
            self.result.ops[i] += n;
            if error {
                self.result.errors[i] += n;
            }
        }
    }

    /// Judges the read-back of key `index` (`--verify`).
    fn check(&mut self, index: u64, outcome: &Outcome, expected: u32) {
        make_key(index, self.plan.load.key_size, &mut self.key);
        let verdict = match outcome {
            Outcome::Value {
                summary: Some(summary),
                ..
            } => judge(&self.key, Some(*summary), expected),
            Outcome::Value { summary: None, .. } => Verdict::Corrupt,
            Outcome::Missing => Verdict::Lost,
            // An error is counted as an error, not as a verdict.
            Outcome::Error(_) => return,
            Outcome::Ok => Verdict::Corrupt,
        };
        let count = match verdict {
            Verdict::Good => return,
            Verdict::Lost => &mut self.result.lost,
            Verdict::Stale => &mut self.result.stale,
            Verdict::Corrupt => &mut self.result.corrupt,
        };
        if *count == 0 {
            eprintln!(
                "verify: key {} is {verdict:?}",
                String::from_utf8_lossy(&self.key)
            );
        }
        *count += 1;
    }
}

//! `ringkv-admin rebalance plan|apply|status|cancel`: move hash slots between a node's
//! shards online.
//!
//! The plan is computed here from SLOT_STATS (per slot: approximate bytes and operations
//! since start): each slot's load is its share of the node's bytes plus its share of the
//! node's operations, and slots move from the most to the least loaded shard while that
//! narrows the gap. The node runs the moves (one slot at a time: copy, switch ownership with
//! a new epoch, drop the old copy; docs/operations.md).

use crate::online::connect_with_timeout;
use crate::table::{self, Table};
use crate::{Failure, Global};
use clap::{Args as ClapArgs, Subcommand};
use ringkv_proto::{rebalance_state, RebalanceStatus, SlotStat, SLOT_COUNT};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum RebalanceCommand {
    /// Show the moves that would balance bytes and operations across shards.
    Plan(PlanArgs),
    /// Start moving slots: a saved plan (--plan), explicit slots (--slots --to), or a plan
    /// computed now.
    Apply(ApplyArgs),
    /// Progress of the running (or last) rebalance.
    Status(StatusArgs),
    /// Stop the rebalance after the slot being moved (its copy is abandoned if unfinished).
    Cancel(StatusArgs),
}

#[derive(ClapArgs, Debug)]
pub struct PlanArgs {
    /// Stop moving once every shard's load is within this many percent of the mean.
    #[arg(long, default_value_t = 10.0)]
    tolerance_pct: f64,
    /// Also write the plan as JSON to FILE (for `rebalance apply --plan FILE`).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(ClapArgs, Debug)]
pub struct ApplyArgs {
    /// A plan written by `rebalance plan --out`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["slots", "to"])]
    plan: Option<PathBuf>,
    /// Slots to move, e.g. `0-2047` or `5,9,100-120`.
    #[arg(long, requires = "to")]
    slots: Option<String>,
    /// The shard the --slots go to.
    #[arg(long, requires = "slots")]
    to: Option<u16>,
    /// Copy at most this many MB (10^6 bytes) per second (0: unthrottled).
    #[arg(long, default_value_t = 0.0)]
    max_mbps: f64,
    /// Wait until the job ends, printing progress once a second; exit 1 unless it completed.
    #[arg(long)]
    wait: bool,
    /// With a computed plan: the tolerance of `rebalance plan`.
    #[arg(long, default_value_t = 10.0)]
    tolerance_pct: f64,
}

#[derive(ClapArgs, Debug)]
pub struct StatusArgs {
    /// Wait until the job is no longer running, printing progress once a second.
    #[arg(long)]
    wait: bool,
}

/// A slot move of a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    pub slot: u16,
    pub from: u16,
    pub to: u16,
    pub bytes: u64,
    pub ops: u64,
}

/// Each shard's load (share of bytes + share of ops) after applying `moves`.
fn shard_loads(slots: &[SlotStat], shards: u16, moves: &[Move]) -> Vec<f64> {
    let total_bytes: u64 = slots.iter().map(|s| s.bytes).sum();
    let total_ops: u64 = slots.iter().map(|s| s.ops).sum();
    let mut owners: Vec<u16> = slots.iter().map(|s| s.owner).collect();
    for m in moves {
        owners[usize::from(m.slot)] = m.to;
    }
    let mut loads = vec![0.0; usize::from(shards)];
    for (s, owner) in slots.iter().zip(owners) {
        loads[usize::from(owner)] += slot_load(s, total_bytes, total_ops);
    }
    loads
}

fn slot_load(s: &SlotStat, total_bytes: u64, total_ops: u64) -> f64 {
    let share = |v: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            v as f64 / total as f64
        }
    };
    share(s.bytes, total_bytes) + share(s.ops, total_ops)
}

/// Greedy balancing: move the slot from the most loaded shard to the least loaded one
/// that best halves their gap, while the spread exceeds `tolerance` of the mean and a move
/// still narrows it.
pub fn plan(slots: &[SlotStat], shards: u16, tolerance: f64) -> Vec<Move> {
    let total_bytes: u64 = slots.iter().map(|s| s.bytes).sum();
    let total_ops: u64 = slots.iter().map(|s| s.ops).sum();
    let mut owners: Vec<u16> = slots.iter().map(|s| s.owner).collect();
    let mut moves: Vec<Move> = Vec::new();
    let mut loads = shard_loads(slots, shards, &[]);
    let mean = loads.iter().sum::<f64>() / f64::from(shards.max(1));
    for _ in 0..SLOT_COUNT {
        let (hi, lo) = extremes(&loads);
        let gap = loads[hi] - loads[lo];
        if mean == 0.0 || gap <= tolerance * mean {
            break;
        }
        // The slot of `hi` whose load is closest to half the gap (and below the gap).
        let best = slots
            .iter()
            .enumerate()
            .filter(|(i, _)| owners[*i] == hi as u16)
            .map(|(i, s)| (i, slot_load(s, total_bytes, total_ops)))
            .filter(|(_, l)| *l > 0.0 && *l < gap)
            .min_by(|a, b| {
                let da = (a.1 - gap / 2.0).abs();
                let db = (b.1 - gap / 2.0).abs();
                da.total_cmp(&db)
            });
        let Some((i, load)) = best else { break };
        owners[i] = lo as u16;
        loads[hi] -= load;
        loads[lo] += load;
        // A slot moved twice keeps one move, from its first owner.
        match moves.iter().position(|m| usize::from(m.slot) == i) {
            Some(p) if moves[p].from == lo as u16 => {
                moves.remove(p);
            }
            Some(p) => moves[p].to = lo as u16,
            None => moves.push(Move {
                slot: i as u16,
                from: hi as u16,
                to: lo as u16,
                bytes: slots[i].bytes,
                ops: slots[i].ops,
            }),
        }
    }
    moves
}

fn extremes(loads: &[f64]) -> (usize, usize) {
    let mut hi = 0;
    let mut lo = 0;
    for (i, l) in loads.iter().enumerate() {
        if *l > loads[hi] {
            hi = i;
        }
        if *l < loads[lo] {
            lo = i;
        }
    }
    (hi, lo)
}

/// Parses `0-2047,5,9-12` into slots.
pub fn parse_slots(text: &str) -> Result<Vec<u16>, String> {
    let mut slots = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let parse = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|&s| s < SLOT_COUNT)
                .ok_or_else(|| format!("{t:?} is not a slot (0..{SLOT_COUNT})"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("{part}: the range runs backwards"));
        }
        slots.extend(a..=b);
    }
    if slots.is_empty() {
        return Err("no slots given".into());
    }
    Ok(slots)
}

fn plan_json(slots: &[SlotStat], shards: u16, moves: &[Move]) -> Value {
    json!({
        "moves": moves.iter().map(|m| json!({"slot": m.slot, "from": m.from, "to": m.to,
            "bytes": m.bytes, "ops": m.ops})).collect::<Vec<_>>(),
        "load_before": shard_loads(slots, shards, &[]),
        "load_after": shard_loads(slots, shards, moves),
    })
}

fn fetch(global: &Global) -> Result<(ringkv_client::Client, Vec<SlotStat>, u16), Failure> {
    let client = connect_with_timeout(global, global.timeout)?;
    let slots = client.slot_stats()?;
    let shards = client.cached_topology().shard_ports.len() as u16;
    Ok((client, slots, shards))
}

pub fn run(global: &Global, command: RebalanceCommand) -> Result<(), Failure> {
    match command {
        RebalanceCommand::Plan(args) => {
            let (_, slots, shards) = fetch(global)?;
            let moves = plan(&slots, shards, args.tolerance_pct / 100.0);
            let doc = plan_json(&slots, shards, &moves);
            if let Some(path) = &args.out {
                std::fs::write(path, serde_json::to_string_pretty(&doc).expect("json"))
                    .map_err(|e| Failure::failed(format!("writing {}: {e}", path.display())))?;
            }
            if global.json {
                println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
            } else {
                print_plan(&slots, shards, &moves);
            }
            Ok(())
        }
        RebalanceCommand::Apply(args) => apply(global, args),
        RebalanceCommand::Status(args) => {
            let client = connect_with_timeout(global, global.timeout)?;
            let status = client.rebalance_status()?;
            if args.wait {
                return wait(global, &client, status);
            }
            print_status(global, &status);
            Ok(())
        }
        RebalanceCommand::Cancel(args) => {
            let client = connect_with_timeout(global, global.timeout)?;
            let status = client.rebalance_cancel()?;
            if args.wait {
                return wait(global, &client, status).or(Ok(()));
            }
            print_status(global, &status);
            Ok(())
        }
    }
}

fn print_plan(slots: &[SlotStat], shards: u16, moves: &[Move]) {
    let before = shard_loads(slots, shards, &[]);
    let after = shard_loads(slots, shards, moves);
    let mut t = Table::new(["shard", "load now", "load after"]);
    for s in 0..usize::from(shards) {
        t.row([
            s.to_string(),
            format!("{:.3}", before[s]),
            format!("{:.3}", after[s]),
        ]);
    }
    print!("{}", t.render());
    if moves.is_empty() {
        println!("balanced: no moves needed");
        return;
    }
    let bytes: u64 = moves.iter().map(|m| m.bytes).sum();
    println!("{} moves, {} to copy:", moves.len(), table::bytes(bytes));
    let mut t = Table::new(["slot", "from", "to", "bytes", "ops"]);
    for m in moves {
        t.row([
            m.slot.to_string(),
            m.from.to_string(),
            m.to.to_string(),
            table::bytes(m.bytes),
            m.ops.to_string(),
        ]);
    }
    print!("{}", t.render());
}

fn apply(global: &Global, args: ApplyArgs) -> Result<(), Failure> {
    if !(args.max_mbps >= 0.0 && args.max_mbps.is_finite()) {
        return Err(Failure::usage("--max-mbps must be a number >= 0"));
    }
    let (client, slots, shards) = fetch(global)?;
    let moves: Vec<(u16, u16)> = if let Some(path) = &args.plan {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| Failure::usage(format!("{}: not a plan: {e}", path.display())))?;
        doc["moves"]
            .as_array()
            .ok_or_else(|| Failure::usage(format!("{}: no \"moves\" list", path.display())))?
            .iter()
            .map(|m| {
                let slot = m["slot"].as_u64().filter(|&s| s < u64::from(SLOT_COUNT));
                let to = m["to"].as_u64().filter(|&t| t < u64::from(shards));
                match (slot, to) {
                    (Some(s), Some(t)) => Ok((s as u16, t as u16)),
                    _ => Err(Failure::usage(format!("{}: bad move {m}", path.display()))),
                }
            })
            .collect::<Result<_, _>>()?
    } else if let (Some(list), Some(to)) = (&args.slots, args.to) {
        if to >= shards {
            return Err(Failure::usage(format!(
                "--to {to}: the node has shards 0..{shards}"
            )));
        }
        parse_slots(list)
            .map_err(|e| Failure::usage(format!("--slots: {e}")))?
            .into_iter()
            .map(|s| (s, to))
            .collect()
    } else {
        plan(&slots, shards, args.tolerance_pct / 100.0)
            .iter()
            .map(|m| (m.slot, m.to))
            .collect()
    };
    let status = client.rebalance_apply(&moves, (args.max_mbps * 1e6) as u64)?;
    if args.wait {
        return wait(global, &client, status);
    }
    print_status(global, &status);
    if !global.json {
        println!("`ringkv-admin rebalance status` shows its progress; `rebalance cancel` stops it");
    }
    Ok(())
}

fn state_name(state: u8) -> &'static str {
    match state {
        rebalance_state::IDLE => "idle",
        rebalance_state::RUNNING => "running",
        rebalance_state::DONE => "done",
        rebalance_state::CANCELLED => "cancelled",
        _ => "failed",
    }
}

fn status_json(s: &RebalanceStatus) -> Value {
    json!({"state": state_name(s.state), "moves_total": s.moves_total, "moves_done": s.moves_done,
        "current_slot": s.current_slot, "bytes_copied": s.bytes_copied,
        "keys_copied": s.keys_copied, "epoch": s.epoch, "message": s.message})
}

fn status_line(s: &RebalanceStatus) -> String {
    let current = s
        .current_slot
        .filter(|_| s.state == rebalance_state::RUNNING)
        .map(|c| format!(", moving slot {c}"))
        .unwrap_or_default();
    let message = if s.message.is_empty() {
        String::new()
    } else {
        format!(": {}", s.message)
    };
    format!(
        "rebalance {}: {} of {} moves done{current}, {} copied ({} keys), slot map epoch {}{message}",
        state_name(s.state),
        s.moves_done,
        s.moves_total,
        table::bytes(s.bytes_copied),
        s.keys_copied,
        s.epoch
    )
}

fn print_status(global: &Global, s: &RebalanceStatus) {
    if global.json {
        println!("{}", status_json(s));
    } else {
        println!("{}", status_line(s));
    }
}

/// Polls until the job is no longer running; fails unless it completed.
fn wait(
    global: &Global,
    client: &ringkv_client::Client,
    mut status: RebalanceStatus,
) -> Result<(), Failure> {
    let started = Instant::now();
    while status.state == rebalance_state::RUNNING {
        std::thread::sleep(Duration::from_millis(250));
        status = client.rebalance_status()?;
        if started.elapsed().as_millis() % 1000 < 250 {
            eprintln!(
                "[{:>6.1}s] {}",
                started.elapsed().as_secs_f64(),
                status_line(&status)
            );
        }
    }
    print_status(global, &status);
    match status.state {
        rebalance_state::DONE | rebalance_state::IDLE => Ok(()),
        _ => Err(Failure::failed(status_line(&status))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse() {
        assert_eq!(parse_slots("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_slots("4096").is_err());
        assert!(parse_slots("9-3").is_err());
        assert!(parse_slots("").is_err());
    }

    #[test]
    fn plan_moves_load_from_the_heavy_shard_and_narrows_the_gap() {
        // Shard 0 owns slots 0..100 with data, shard 1 owns 100..200 with none.
        let slots: Vec<SlotStat> = (0..200u16)
            .map(|i| SlotStat {
                owner: if i < 100 { 0 } else { 1 },
                bytes: if i < 100 { 1000 } else { 0 },
                ops: if i < 100 { 10 } else { 0 },
            })
            .collect();
        let moves = plan(&slots, 2, 0.1);
        assert!(!moves.is_empty());
        assert!(moves
            .iter()
            .all(|m| m.from == 0 && m.to == 1 && m.slot < 100));
        let after = shard_loads(&slots, 2, &moves);
        let mean = (after[0] + after[1]) / 2.0;
        assert!(
            (after[0] - after[1]).abs() <= 0.1 * mean + 1e-9,
            "{after:?}"
        );
        // Already balanced: nothing to do.
        let balanced: Vec<SlotStat> = (0..200u16)
            .map(|i| SlotStat {
                owner: i % 2,
                bytes: 5,
                ops: 1,
            })
            .collect();
        assert!(plan(&balanced, 2, 0.1).is_empty());
    }
}

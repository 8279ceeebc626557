//! Subcommands that talk to a running node.

use crate::table::{self, Table};
use crate::{Failure, Global};
use clap::Args as ClapArgs;
use ringkv_client::{Client, ClientConfig};
use ringkv_proto::ShardStats;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub fn connect(global: &Global) -> Result<Client, Failure> {
    let config = ClientConfig {
        request_timeout: global.timeout,
        connect_timeout: global.timeout.min(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    Ok(Client::connect(global.addr.as_str(), config)?)
}

#[derive(ClapArgs, Debug)]
pub struct StatusArgs {
    /// Seconds between the two samples that give the current ops/s.
    #[arg(long, default_value_t = 1.0)]
    sample_secs: f64,
}

#[derive(ClapArgs, Debug)]
pub struct StatsArgs {
    /// Only this shard.
    #[arg(long)]
    shard: Option<u16>,
}

fn counter(s: &ShardStats, name: &str) -> u64 {
    s.get(name).unwrap_or(0)
}

/// Bytes of data a shard holds: its SSTables of every level plus its memtables.
fn data_bytes(s: &ShardStats) -> u64 {
    let levels: u64 = s
        .values
        .iter()
        .filter(|(n, _)| n.starts_with("level") && n.ends_with("_bytes"))
        .map(|(_, v)| v)
        .sum();
    levels + counter(s, "memtable_bytes")
}

pub fn status(global: &Global, args: StatusArgs) -> Result<(), Failure> {
    if !(args.sample_secs > 0.0 && args.sample_secs <= 60.0) {
        return Err(Failure::usage("--sample-secs must be in (0, 60]"));
    }
    let client = connect(global)?;
    let topology = client.topology()?;
    let first = client.stats()?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.sample_secs));
    let second = client.stats()?;
    let elapsed = t0.elapsed().as_secs_f64();
    let mut shards = Vec::new();
    for s in &second {
        let before = first.iter().find(|f| f.shard == s.shard);
        let rate = |name: &str| {
            let prev = before.map(|b| counter(b, name)).unwrap_or(0);
            counter(s, name).saturating_sub(prev) as f64 / elapsed
        };
        let port = topology.shard_ports.get(s.shard as usize).copied();
        shards.push(json!({
            "shard": s.shard,
            "port": port,
            "slots": counter(s, "slots_owned"),
            "data_bytes": data_bytes(s),
            "reads_per_sec": rate("reads"),
            "writes_per_sec": rate("writes"),
            "requests_per_sec": rate("requests"),
            "connections": counter(s, "connections_open"),
            "uptime_seconds": counter(s, "uptime_seconds"),
        }));
    }
    let uptime = second
        .iter()
        .map(|s| counter(s, "uptime_seconds"))
        .max()
        .unwrap_or(0);
    let doc = json!({
        "addr": global.addr,
        "epoch": topology.epoch,
        "shard_count": second.len(),
        "uptime_seconds": uptime,
        "data_bytes": second.iter().map(data_bytes).sum::<u64>(),
        "shards": shards,
    });
    if global.json {
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return Ok(());
    }
    println!(
        "node {}: {} shards, slot map epoch {}, up {}, {} of data",
        global.addr,
        second.len(),
        topology.epoch,
        table::duration_secs(uptime),
        table::bytes(doc["data_bytes"].as_u64().unwrap_or(0)),
    );
    let mut t = Table::new([
        "shard",
        "port",
        "slots",
        "data",
        "reads/s",
        "writes/s",
        "connections",
    ]);
    for s in &shards {
        t.row([
            s["shard"].to_string(),
            s["port"].to_string(),
            s["slots"].to_string(),
            table::bytes(s["data_bytes"].as_u64().unwrap_or(0)),
            format!("{:.0}", s["reads_per_sec"].as_f64().unwrap_or(0.0)),
            format!("{:.0}", s["writes_per_sec"].as_f64().unwrap_or(0.0)),
            s["connections"].to_string(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

/// Ratios derived from a shard's counters, reported beside them.
fn derived(s: &ShardStats) -> Vec<(String, f64)> {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let hits = counter(s, "cache_hits");
    let misses = counter(s, "cache_misses");
    vec![
        (
            "write_amplification".into(),
            ratio(
                counter(s, "disk_bytes_written") + counter(s, "wal_bytes_written"),
                counter(s, "user_bytes_written"),
            ),
        ),
        ("cache_hit_rate".into(), ratio(hits, hits + misses)),
        (
            "memory_used_fraction".into(),
            ratio(
                counter(s, "memory_used_bytes"),
                counter(s, "memory_budget_bytes"),
            ),
        ),
    ]
}

pub fn stats(global: &Global, args: StatsArgs) -> Result<(), Failure> {
    let client = connect(global)?;
    let mut all = client.stats()?;
    if let Some(shard) = args.shard {
        if !all.iter().any(|s| s.shard == shard) {
            return Err(Failure::usage(format!(
                "--shard {shard}: the node has shards 0..{}",
                all.len()
            )));
        }
        all.retain(|s| s.shard == shard);
    }
    if global.json {
        let shards: Vec<Value> = all
            .iter()
            .map(|s| {
                let mut map: BTreeMap<String, Value> = s
                    .values
                    .iter()
                    .map(|(n, v)| (n.clone(), json!(v)))
                    .collect();
                for (n, v) in derived(s) {
                    map.insert(n, json!(v));
                }
                json!({ "shard": s.shard, "counters": map })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "shards": shards })).expect("json")
        );
        return Ok(());
    }
    // One row per counter, one column per shard; names in the order the first shard lists
    // them, then the derived ratios.
    let mut t = Table::new(
        std::iter::once("counter".to_string())
            .chain(all.iter().map(|s| format!("shard {}", s.shard))),
    );
    let names: Vec<String> = all
        .first()
        .map(|s| s.values.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    for name in &names {
        let cells = all.iter().map(|s| {
            let v = counter(s, name);
            if name.ends_with("_bytes") {
                table::bytes(v)
            } else {
                v.to_string()
            }
        });
        t.row(std::iter::once(name.clone()).chain(cells));
    }
    let derived: Vec<Vec<(String, f64)>> = all.iter().map(derived).collect();
    if let Some(first) = derived.first() {
        for (i, (name, _)) in first.iter().enumerate() {
            let cells = derived.iter().map(|d| format!("{:.3}", d[i].1));
            t.row(std::iter::once(name.clone()).chain(cells));
        }
    }
    print!("{}", t.render());
    Ok(())
}

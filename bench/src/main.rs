//! `ringkv-bench`: ringkv's load generator.
//!
//! One subcommand per file: `embedded` ([`embedded`]) drives the storage engine in-process,
//! one database per shard. Later issues add `run` (against a server, through the client) and
//! `compare` (two JSON reports side by side). Shared pieces: [`workload`] (what each workload
//! does and its key sequence), [`latency`] (fixed-bound histograms), [`report`] (what is
//! printed and written as JSON), [`shard`] (the per-shard side of a run).

mod embedded;
mod latency;
mod report;
mod shard;
mod workload;

use clap::{Parser, Subcommand};

/// ringkv load generator.
#[derive(Parser, Debug)]
#[command(name = "ringkv-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmark the storage engine in-process: one executor and one database per shard.
    Embedded(embedded::EmbeddedArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Embedded(args) => embedded::run(args),
    }
}

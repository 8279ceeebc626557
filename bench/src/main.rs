//! `ringkv-bench`: ringkv's load generator.
//!
//! One subcommand per file: `embedded` ([`embedded`]) drives the storage engine in-process,
//! one database per shard; `run` ([`run`]) drives a running server through the client; `sink` ([`sink`])
//! is a server that stores nothing, for the generator's ceiling. Shared pieces: [`workload`] (what each workload
//! does and its key sequence), [`latency`] (fixed-bound histograms), [`report`] (what is
//! printed and written as JSON), [`shard`] (the per-shard side of a run).

mod compare;
mod driver;
mod embedded;
mod inflight;
mod keys;
mod latency;
mod live;
mod mix;
mod report;
mod run;
mod shard;
mod sink;
mod svg;
mod verify;
mod wire;
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
    /// Drive a running ringkv-server through ringkv-client (shard-aware, pipelined,
    /// batched writes): `ringkv-bench run --target ringkv://127.0.0.1:7070`.
    Run(run::RunArgs),
    /// Run the same workloads against two targets alternately (A B A B ...) and report the
    /// ratio A/B of each pair and their median, min and max:
    /// `ringkv-bench compare --a ringkv://127.0.0.1:7070 --b redis://127.0.0.1:6379`.
    Compare(compare::CompareArgs),
    /// A server that speaks the native protocol and stores nothing: `run` against it
    /// measures the load generator's own ceiling.
    Sink(sink::SinkArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Embedded(args) => embedded::run(args),
        Command::Run(args) => run::run(args),
        Command::Sink(args) => sink::run(args),
        Command::Compare(args) => compare::run(args),
    }
}

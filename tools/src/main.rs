//! `ringkv-admin`: the operator's command line.
//!
//! Online subcommands talk to a running node through `ringkv-client` (admin operations are
//! protocol ops); offline ones read a stopped node's data directory. Every subcommand prints
//! a human table by default and JSON with `--json`. Exit codes: 0 success, 1 the operation
//! failed (server error, I/O, corruption found), 2 usage error, 3 the node could not be
//! reached.

mod online;
mod table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code when the operation ran and failed (server error, corruption found, I/O).
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error (clap uses the same for bad flags).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the node could not be reached at all.
pub const EXIT_UNREACHABLE: u8 = 3;

/// ringkv-admin: observe and operate a ringkv node.
///
/// Online subcommands (status, stats, ...) connect to a running ringkv-server at --addr.
/// Offline subcommands (verify, restore, *-dump) work on a stopped node's data directory.
#[derive(Parser, Debug)]
#[command(name = "ringkv-admin", version)]
struct Args {
    /// Address of any port of the node (its base port or a shard's port).
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:7070",
        env = "RINGKV_ADDR"
    )]
    addr: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for each answer from the node.
    #[arg(long, global = true, default_value_t = 30)]
    timeout_secs: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Node overview: shards, their ports and slots, data bytes, uptime, current ops/s.
    Status(online::StatusArgs),
    /// Per-shard counters: memtables, levels, compaction debt, write amplification, cache
    /// hit rate, WAL, stalls.
    Stats(online::StatsArgs),
}

/// What a subcommand failed with, and the exit code that goes with it.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<ringkv_client::ClientError> for Failure {
    fn from(e: ringkv_client::ClientError) -> Self {
        let code = match e {
            ringkv_client::ClientError::Connect { .. } => EXIT_UNREACHABLE,
            _ => EXIT_FAILED,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

/// Options every online subcommand shares.
pub struct Global {
    pub addr: String,
    pub json: bool,
    pub timeout: std::time::Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let global = Global {
        addr: args.addr,
        json: args.json,
        timeout: std::time::Duration::from_secs(args.timeout_secs.max(1)),
    };
    let result = match args.command {
        Command::Status(a) => online::status(&global, a),
        Command::Stats(a) => online::stats(&global, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("ringkv-admin: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

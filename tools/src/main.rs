//! `ringkv-admin`: the operator's command line (not implemented yet).
//!
//! The planned subcommands are declared so `--help` documents them; each one currently
//! prints a clear "not implemented yet" message and exits with code 2 (clap also exits with
//! code 2 for unknown subcommands and bad flags).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit code of subcommands that are not implemented yet (same as a usage error).
const EXIT_NOT_IMPLEMENTED: i32 = 2;

/// ringkv admin CLI: inspect and operate a ringkv node (not implemented yet).
#[derive(Parser, Debug)]
#[command(name = "ringkv-admin", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show per-shard statistics of a running node.
    Stats {
        /// Address of the node, host:port.
        #[arg(long, default_value = "127.0.0.1:7400")]
        addr: String,
    },
    /// Flush every shard's memtables to SSTables.
    Flush {
        /// Address of the node, host:port.
        #[arg(long, default_value = "127.0.0.1:7400")]
        addr: String,
    },
    /// Run a manual compaction on every shard.
    Compact {
        /// Address of the node, host:port.
        #[arg(long, default_value = "127.0.0.1:7400")]
        addr: String,
    },
    /// Take a consistent checkpoint (hard links of live SSTables plus the manifest).
    Checkpoint {
        /// Address of the node, host:port.
        #[arg(long, default_value = "127.0.0.1:7400")]
        addr: String,
        /// Directory the checkpoint is written to (must not exist).
        #[arg(long)]
        dest: PathBuf,
    },
    /// Print the slot map (slot ranges -> shards) and its epoch.
    SlotMap {
        /// Address of the node, host:port.
        #[arg(long, default_value = "127.0.0.1:7400")]
        addr: String,
    },
    /// Verify the checksums of every file in an offline shard directory.
    Verify {
        /// Shard data directory.
        dir: PathBuf,
    },
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Stats { .. } => "stats",
            Command::Flush { .. } => "flush",
            Command::Compact { .. } => "compact",
            Command::Checkpoint { .. } => "checkpoint",
            Command::SlotMap { .. } => "slot-map",
            Command::Verify { .. } => "verify",
        }
    }
}

fn main() {
    let args = Args::parse();
    eprintln!(
        "ringkv-admin {}: not implemented yet; the admin CLI arrives in a later issue.",
        args.command.name()
    );
    std::process::exit(EXIT_NOT_IMPLEMENTED);
}

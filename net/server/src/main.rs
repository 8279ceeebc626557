//! `ringkv-server`: starts one shard per core and serves the ringkv protocol.
//!
//! Not implemented yet: the command line is parsed (so `--help` documents the planned flags)
//! and the binary then exits with code 2 and a clear message.

use clap::Parser;
use std::path::PathBuf;

/// ringkv server: a thread-per-core sharded key-value store (not implemented yet).
#[derive(Parser, Debug)]
#[command(name = "ringkv-server", version)]
struct Args {
    /// Data directory; shard s keeps its files in <DATA_DIR>/shard-<s>.
    #[arg(long, default_value = "ringkv-data")]
    data_dir: PathBuf,
    /// Base port shared by all shards (SO_REUSEPORT); shard s also listens on base + 1 + s.
    #[arg(long, default_value_t = 7400)]
    port: u16,
    /// Number of shards (default: number of cores).
    #[arg(long)]
    shards: Option<u16>,
}

fn main() {
    let _args = Args::parse();
    eprintln!("{}", ringkv_server::NOT_IMPLEMENTED);
    std::process::exit(ringkv_server::EXIT_NOT_IMPLEMENTED);
}

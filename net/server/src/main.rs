//! `ringkv-server`: parses flags, sets up logging and runs the node until SIGINT/SIGTERM.
//! Exit codes: 0 after a clean shutdown, 1 when start-up or a shard failed, 2 on bad flags.

use clap::Parser;
use ringkv_server::config::{Config, Flags};
use tracing_subscriber::EnvFilter;

fn main() {
    let flags = Flags::parse();
    let config = match Config::resolve(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringkv-server: {e:#}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = ringkv_server::node::run(config) {
        tracing::error!("{e:#}");
        eprintln!("ringkv-server: {e:#}");
        std::process::exit(1);
    }
}

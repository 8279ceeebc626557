//! Server configuration: command-line flags, an optional TOML file, and defaults.
//!
//! Precedence: a flag given on the command line wins over the same key in `--config FILE`,
//! which wins over the default. [`Config::resolve`] validates everything once, so the rest of
//! the server works with checked values.

use anyhow::{bail, Context, Result};
use clap::Parser;
use ringkv_engine::wal::Durability;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// ringkv-server: a sharded, thread-per-core key-value store.
///
/// Each shard runs on its own core with its own LSM tree and io_uring ring. Clients connect
/// to the base port (any shard answers, via SO_REUSEPORT) or to a shard's own port
/// `base + 1 + shard`; requests for keys of another shard are forwarded inside the node.
/// SIGINT or SIGTERM stops accepting, finishes in-flight requests, flushes and exits 0.
#[derive(Parser, Debug, Default)]
#[command(name = "ringkv-server", version, about, long_about)]
pub struct Flags {
    /// Directory holding the node's data: the slot map and one sub-directory per shard.
    /// Created if missing. [default: ./ringkv-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Base address to listen on. Shard i also listens on port + 1 + i of the same host.
    /// [default: 127.0.0.1:7070]
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// Number of shards (one executor each). Fixed when the data dir is created; on restart
    /// the data dir's shard count is used and a different value is an error.
    /// [default: the number of cores]
    #[arg(long, value_name = "N")]
    pub shards: Option<u16>,

    /// When a write is acknowledged: `sync` (after fdatasync of the WAL), `interval:MS`
    /// (WAL synced every MS milliseconds; a crash may lose the last MS of writes) or `none`
    /// (left to the OS). [default: sync]
    #[arg(long, value_name = "MODE")]
    pub durability: Option<String>,

    /// Memory budget of the whole node in MiB: memtables, block cache and buffers, split
    /// evenly between shards. [default: 256 per shard]
    #[arg(long, value_name = "MIB")]
    pub memory_mb: Option<u64>,

    /// Pin shard executors to cores: `auto` pins when there are no more shards than cores,
    /// `on` always pins (fails if there are too few cores), `off` never pins. [default: auto]
    #[arg(long, value_name = "auto|on|off")]
    pub pin: Option<String>,

    /// TOML file with any of these settings (same names, with underscores: data_dir,
    /// listen, shards, durability, memory_mb, pin, max_connections, max_frame_bytes,
    /// frame_timeout_ms, handshake_timeout_ms, metrics_listen, log, stall_report_ms,
    /// background_write_mb_per_s). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Most client connections the node accepts at once; one more is told
    /// TOO_MANY_CONNECTIONS in the handshake and closed. [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,

    /// Largest frame (header + body) a client may send, in bytes, 65536..=16777216.
    /// [default: 8388608]
    #[arg(long, value_name = "BYTES")]
    pub max_frame_bytes: Option<u32>,

    /// A frame that has started to arrive must be complete within this many milliseconds,
    /// or the connection is closed (guards against clients that stall mid-frame).
    /// [default: 10000]
    #[arg(long, value_name = "MS")]
    pub frame_timeout_ms: Option<u64>,

    /// A new connection must send its hello within this many milliseconds. [default: 5000]
    #[arg(long, value_name = "MS")]
    pub handshake_timeout_ms: Option<u64>,

    /// Serve Prometheus metrics (OpenMetrics text) at http://ADDR/metrics: per-shard
    /// request counts and latency histograms, bytes in and out, WAL syncs, flushes,
    /// compactions, compaction debt, stalls, memory against budget, cross-shard messages and
    /// connections. [default: off]
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,

    /// Log filter in `tracing` syntax, e.g. `info` or `ringkv_server=debug`. The RUST_LOG
    /// environment variable overrides it. [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    /// Diagnostic of latency spikes: log a warning, with the stack it caught, whenever a
    /// shard runs one task queue for more than MS milliseconds past its 10 ms time slice
    /// without yielding (every request on that shard waits meanwhile). Each report costs a
    /// signal and a symbolized backtrace, so leave it off in production. [default: 0, off]
    #[arg(long, value_name = "MS")]
    pub stall_report_ms: Option<u64>,

    /// Megabytes (10^6 bytes) per second that each shard's memtable flushes and compactions
    /// may write together; flushes go first. Tables written at the disk's full speed queue
    /// in front of the WAL's fdatasyncs and lengthen the tail latency of durable writes;
    /// too low a rate lets compaction fall behind, and writes then slow down or stall.
    /// 0 writes tables unpaced. [default: 0]
    #[arg(long, value_name = "MB")]
    pub background_write_mb_per_s: Option<u64>,
}

/// The same settings as read from a TOML file; every key is optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    shards: Option<u16>,
    durability: Option<String>,
    memory_mb: Option<u64>,
    pin: Option<String>,
    max_connections: Option<u32>,
    max_frame_bytes: Option<u32>,
    frame_timeout_ms: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    metrics_listen: Option<String>,
    log: Option<String>,
    stall_report_ms: Option<u64>,
    background_write_mb_per_s: Option<u64>,
}

/// Whether shard executors are pinned to cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    Auto,
    On,
    Off,
}

/// Largest frame the server accepts at most (the engine takes values up to 16 MiB).
pub const MAX_FRAME_BYTES_CAP: u32 = 16 << 20;

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// `None`: take it from the data dir, or the number of cores for a new one.
    pub shards: Option<u16>,
    pub durability: Durability,
    /// `None`: 256 MiB per shard.
    pub memory_bytes: Option<u64>,
    pub pin: Pin,
    pub max_connections: u32,
    pub max_frame_bytes: u32,
    pub frame_timeout: Duration,
    pub handshake_timeout: Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub log: String,
    /// `--stall-report-ms`: `None` when off.
    pub stall_report: Option<Duration>,
    /// `--background-write-mb-per-s` in bytes per second per shard (0: unpaced).
    pub background_write_bytes_per_sec: u64,
}

/// Largest `--background-write-mb-per-s` (far beyond any disk; 0 is the way to turn pacing
/// off).
pub const BACKGROUND_WRITE_MB_PER_S_MAX: u64 = 100_000;

/// Memory per shard when `--memory-mb` is not given.
pub const SHARD_MEMORY_DEFAULT_BYTES: u64 = 256 << 20;

impl Config {
    /// Merges flags over the TOML file (if any) over defaults, and validates.
    pub fn resolve(flags: Flags) -> Result<Self> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen_text = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:7070".to_string());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("--listen {listen_text:?} is not HOST:PORT (an IP address and a port)")
        })?;
        if listen.port() == 0 {
            bail!("--listen needs an explicit port: shard ports are derived from it (base + 1 + shard)");
        }
        let durability_text = flags
            .durability
            .or(file.durability)
            .unwrap_or_else(|| "sync".to_string());
        let durability: Durability = durability_text.parse().map_err(|e| {
            anyhow::anyhow!(
                "--durability {durability_text:?}: {e} (expected sync, interval:MS or none)"
            )
        })?;
        let pin = match flags.pin.or(file.pin).as_deref().unwrap_or("auto") {
            "auto" => Pin::Auto,
            "on" => Pin::On,
            "off" => Pin::Off,
            other => bail!("--pin {other:?}: expected auto, on or off"),
        };
        let shards = flags.shards.or(file.shards);
        if shards == Some(0) {
            bail!("--shards must be at least 1");
        }
        if let Some(n) = shards {
            if n > ringkv_proto::SLOT_COUNT {
                bail!(
                    "--shards {n}: at most {} (one slot per shard)",
                    ringkv_proto::SLOT_COUNT
                );
            }
        }
        let memory_mb = flags.memory_mb.or(file.memory_mb);
        if let Some(mb) = memory_mb {
            if mb < 48 {
                bail!(
                    "--memory-mb {mb}: at least 48 MiB per node (each shard needs at least 48 MiB)"
                );
            }
        }
        let max_frame_bytes = flags
            .max_frame_bytes
            .or(file.max_frame_bytes)
            .unwrap_or(ringkv_proto::MAX_FRAME_BYTES_DEFAULT);
        if !(ringkv_proto::frame::MAX_FRAME_BYTES_MIN..=MAX_FRAME_BYTES_CAP)
            .contains(&max_frame_bytes)
        {
            bail!(
                "--max-frame-bytes {max_frame_bytes}: must be within {}..={MAX_FRAME_BYTES_CAP}",
                ringkv_proto::frame::MAX_FRAME_BYTES_MIN
            );
        }
        let max_connections = flags
            .max_connections
            .or(file.max_connections)
            .unwrap_or(1024);
        if max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        let frame_timeout_ms = flags
            .frame_timeout_ms
            .or(file.frame_timeout_ms)
            .unwrap_or(10_000);
        let handshake_timeout_ms = flags
            .handshake_timeout_ms
            .or(file.handshake_timeout_ms)
            .unwrap_or(5_000);
        if frame_timeout_ms == 0 || handshake_timeout_ms == 0 {
            bail!("timeouts must be at least 1 ms");
        }
        let metrics_listen = match flags.metrics_listen.or(file.metrics_listen) {
            Some(text) => Some(text.parse::<SocketAddr>().with_context(|| {
                format!("--metrics-listen {text}: expected HOST:PORT, e.g. 127.0.0.1:9470")
            })?),
            None => None,
        };
        let background_write_bytes_per_sec = match flags
            .background_write_mb_per_s
            .or(file.background_write_mb_per_s)
        {
            None => ringkv_engine::db::BACKGROUND_WRITE_BYTES_PER_SEC_DEFAULT,
            Some(mb) if mb > BACKGROUND_WRITE_MB_PER_S_MAX => bail!(
                "--background-write-mb-per-s {mb}: at most {BACKGROUND_WRITE_MB_PER_S_MAX} (0 turns pacing off)"
            ),
            Some(mb) => mb * 1_000_000,
        };
        Ok(Config {
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./ringkv-data")),
            listen,
            shards,
            durability,
            memory_bytes: memory_mb.map(|mb| mb << 20),
            pin,
            max_connections,
            max_frame_bytes,
            frame_timeout: Duration::from_millis(frame_timeout_ms),
            handshake_timeout: Duration::from_millis(handshake_timeout_ms),
            metrics_listen,
            log: flags.log.or(file.log).unwrap_or_else(|| "info".to_string()),
            stall_report: match flags.stall_report_ms.or(file.stall_report_ms) {
                None | Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
            background_write_bytes_per_sec,
        })
    }

    /// The port shard `shard` listens on.
    pub fn shard_port(&self, shard: u16) -> Result<u16> {
        let port = u32::from(self.listen.port()) + 1 + u32::from(shard);
        u16::try_from(port).map_err(|_| {
            anyhow::anyhow!(
                "shard {shard}'s port {port} is past 65535; choose a lower --listen port"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringkv.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndurability = \"none\"\nshards = 3\nmax_connections = 7\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(path),
            durability: Some("interval:5".into()),
            ..Flags::default()
        };
        let c = Config::resolve(flags).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.durability, Durability::Interval(Duration::from_millis(5)));
        assert_eq!(c.shards, Some(3));
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.data_dir, PathBuf::from("./ringkv-data"));
        assert_eq!(c.pin, Pin::Auto);
        assert_eq!(c.shard_port(2).unwrap(), 9003);
        assert_eq!(c.stall_report, None);
    }

    #[test]
    fn stall_reports_are_off_by_default_and_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringkv.toml");
        std::fs::write(&path, "stall_report_ms = 3\n").unwrap();
        let with = |flag: Option<u64>, file: bool| {
            Config::resolve(Flags {
                stall_report_ms: flag,
                config: file.then(|| path.clone()),
                ..Flags::default()
            })
            .unwrap()
            .stall_report
        };
        assert_eq!(with(None, false), None);
        assert_eq!(with(Some(0), false), None);
        assert_eq!(with(None, true), Some(Duration::from_millis(3)));
        assert_eq!(with(Some(7), true), Some(Duration::from_millis(7)));
        assert_eq!(with(Some(0), true), None);
    }

    #[test]
    fn background_write_rate_comes_from_flag_file_or_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringkv.toml");
        std::fs::write(&path, "background_write_mb_per_s = 40\n").unwrap();
        let with = |flag: Option<u64>, file: bool| {
            Config::resolve(Flags {
                background_write_mb_per_s: flag,
                config: file.then(|| path.clone()),
                ..Flags::default()
            })
            .map(|c| c.background_write_bytes_per_sec)
        };
        assert_eq!(
            with(None, false).unwrap(),
            ringkv_engine::db::BACKGROUND_WRITE_BYTES_PER_SEC_DEFAULT
        );
        assert_eq!(with(None, true).unwrap(), 40_000_000);
        assert_eq!(with(Some(0), true).unwrap(), 0);
        assert_eq!(with(Some(150), false).unwrap(), 150_000_000);
        let err = with(Some(BACKGROUND_WRITE_MB_PER_S_MAX + 1), false).unwrap_err();
        assert!(
            err.to_string().contains("--background-write-mb-per-s"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_explained() {
        let bad = |f: Flags| Config::resolve(f).unwrap_err().to_string();
        assert!(bad(Flags {
            durability: Some("fast".into()),
            ..Flags::default()
        })
        .contains("--durability"));
        assert!(bad(Flags {
            listen: Some("localhost".into()),
            ..Flags::default()
        })
        .contains("--listen"));
        assert!(bad(Flags {
            listen: Some("127.0.0.1:0".into()),
            ..Flags::default()
        })
        .contains("explicit port"));
        assert!(bad(Flags {
            pin: Some("maybe".into()),
            ..Flags::default()
        })
        .contains("--pin"));
        assert!(bad(Flags {
            shards: Some(0),
            ..Flags::default()
        })
        .contains("--shards"));
        assert!(bad(Flags {
            max_frame_bytes: Some(10),
            ..Flags::default()
        })
        .contains("--max-frame-bytes"));
        let c = Config::resolve(Flags {
            listen: Some("127.0.0.1:65535".into()),
            ..Flags::default()
        })
        .unwrap();
        assert!(c.shard_port(0).is_err());
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        let err = Config::resolve(Flags {
            config: Some(path),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("listne"), "{err:#}");
    }
}

//! A real `ringkv-server` process for end-to-end tests.
//!
//! [`ServerProcess::start`] finds (or builds, once per test process) the server binary, picks
//! a block of free ports, starts the server on a temporary data dir (or the one given), and
//! returns once the base port and every shard port answer a client hello. The server's
//! stderr goes to a file next to the data dir; a start-up failure, and any test that panics
//! while a server is alive, prints its tail (and a panicking test keeps the temporary
//! directory for inspection). Dropping a `ServerProcess` SIGKILLs the server.
//!
//! Ports: shard `i` listens on `base + 1 + i`, so a server needs the block
//! `base..=base + 1 + shards`. Blocks are handed out by a process-wide counter that starts at
//! a pid-derived offset (so that test processes running side by side start far apart) and
//! every port of a block is checked by binding it. The range, 20000..32000, lies below
//! Linux's default ephemeral range (32768..60999), so outgoing client sockets never sit on
//! a port a server is about to take.
//!
//! Restarts: [`ServerProcess::restart`] reuses the ports, as a real node would.
//! [`ServerProcess::restart_on_new_ports`] exists for tests that must not depend on the
//! server rebinding at once (before accca63 on main, a server that had closed or lost
//! connections could not rebind its ports for about 60 s: `tests/server_restart_same_ports.rs`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// First port handed out.
const PORT_RANGE_START: u32 = 20_000;
/// One past the last port handed out.
const PORT_RANGE_END: u32 = 32_000;
/// How long a server may take to listen on all its ports.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of server stderr printed when something goes wrong.
const STDERR_TAIL_BYTES: u64 = 8 << 10;
/// How long [`ServerProcess::restart`] retries a port still held by the previous process.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);
/// Start attempts when a port turns out to be taken between our check and the server's bind.
const START_ATTEMPTS: usize = 5;

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `--shards`.
    pub shards: u16,
    /// `--durability`: `sync`, `none` or `interval:MS`.
    pub durability: String,
    /// `--memory-mb` for the whole node (at least 48 per shard).
    pub memory_mb: u64,
    /// More flags, passed as they are (e.g. `--max-frame-bytes`, `65536`).
    pub extra_args: Vec<String>,
    /// Data dir to use; `None`: a fresh temporary directory, removed when the server drops.
    pub data_dir: Option<PathBuf>,
}

impl Default for ServerOptions {
    /// Two shards, `sync` durability, 128 MiB: small enough to run several at once.
    fn default() -> Self {
        Self {
            shards: 2,
            durability: "sync".to_string(),
            memory_mb: 128,
            extra_args: Vec::new(),
            data_dir: None,
        }
    }
}

impl ServerOptions {
    /// The default options plus `extra` flags.
    pub fn with_args(extra: &[&str]) -> Self {
        Self {
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }
}

/// A running (or stopped) `ringkv-server` process.
pub struct ServerProcess {
    options: ServerOptions,
    child: Option<Child>,
    base_port: u16,
    data_dir: PathBuf,
    stderr_path: PathBuf,
    /// Holds the stderr file and, unless a data dir was given, the data dir.
    temp: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts a server and waits until all its ports accept connections. Panics (with the
    /// server's stderr) if it does not come up within a minute.
    pub fn start(options: ServerOptions) -> Self {
        let temp = tempfile::Builder::new()
            .prefix("ringkv-e2e-")
            .tempdir()
            .expect("creating a temporary directory for the server");
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let stderr_path = temp.path().join("server.stderr");
        let mut server = Self {
            options,
            child: None,
            base_port: 0,
            data_dir,
            stderr_path,
            temp: Some(temp),
        };
        for attempt in 1..=START_ATTEMPTS {
            server.base_port = reserve_ports(server.options.shards);
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::PortTaken) if attempt < START_ATTEMPTS => continue,
                Err(e) => panic!(
                    "ringkv-server did not start: {e}\n--- server stderr ---\n{}",
                    server.stderr_tail()
                ),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// The base address (any shard may answer).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base_port))
    }

    /// The address of shard `shard`'s own port.
    pub fn shard_addr(&self, shard: u16) -> SocketAddr {
        assert!(shard < self.options.shards, "no shard {shard}");
        SocketAddr::from(([127, 0, 0, 1], self.base_port + 1 + shard))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// Everything the server (all its starts) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// What the server wrote to stderr after its first `offset` bytes.
    fn stderr_since(&self, offset: u64) -> String {
        let bytes = std::fs::read(&self.stderr_path).unwrap_or_default();
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }

    /// The last few KiB of the server's stderr.
    pub fn stderr_tail(&self) -> String {
        let Ok(mut file) = File::open(&self.stderr_path) else {
            return "(no stderr file)".to_string();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(STDERR_TAIL_BYTES);
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
            return "(unreadable stderr file)".to_string();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// What a failing test should print about a running server: the STATS counters of every
    /// shard (asked on a fresh connection, 5 s timeout) and the TCP sockets on its ports with
    /// their queue sizes (`ss -tn`).
    pub fn diagnostics(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        match stats_over_fresh_connection(self.addr()) {
            Ok(shards) => {
                for (shard, counters) in shards {
                    let _ = writeln!(text, "STATS shard {shard}: {counters:?}");
                }
            }
            Err(e) => {
                let _ = writeln!(text, "STATS failed: {e}");
            }
        }
        let ports: Vec<String> = std::iter::once(self.addr())
            .chain((0..self.options.shards).map(|s| self.shard_addr(s)))
            .map(|a| format!(":{} ", a.port()))
            .collect();
        match Command::new("ss").arg("-tn").output() {
            Ok(out) => {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if ports.iter().any(|p| line.contains(p.as_str())) {
                        let _ = writeln!(text, "socket {line}");
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(text, "ss failed: {e}");
            }
        }
        text
    }

    /// SIGKILLs the server and reaps it. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (at most a minute) for the server to exit; returns its exit
    /// status. Panics if it is not running or does not exit in time (it is then SIGKILLed).
    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_within(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("ringkv-server did not exit within 60 s of SIGTERM"))
    }

    /// Sends SIGTERM and waits up to `limit` for the server to exit. `None` if it did not
    /// (it is then SIGKILLed and reaped).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("server is not running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet, so it cannot name
        // another process; it has no memory-safety preconditions.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM to ringkv-server {pid} failed");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for ringkv-server") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the server again with the same options, data dir and ports (SIGKILLing it
    /// first if it is still running).
    ///
    /// A port still held by the old process (its io_uring teardown can outlive the process
    /// for a moment) is retried for [`REBIND_TIMEOUT`]; after that the restart panics.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + REBIND_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(StartError::PortTaken) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e @ StartError::PortTaken) => panic!(
                    "ringkv-server did not restart on port {} within {REBIND_TIMEOUT:?}: {e}\n\
                     --- server stderr ---\n{}",
                    self.base_port,
                    self.stderr_tail()
                ),
                Err(e) => panic!(
                    "ringkv-server did not restart: {e}\n--- server stderr ---\n{}",
                    self.stderr_tail()
                ),
            }
        }
    }

    /// Starts the server again with the same options and data dir on a fresh block of
    /// ports (SIGKILLing it first if it is still running). Clients must reconnect to the
    /// new [`ServerProcess::addr`].
    pub fn restart_on_new_ports(&mut self) {
        self.kill();
        for attempt in 1..=START_ATTEMPTS {
            self.base_port = reserve_ports(self.options.shards);
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(StartError::PortTaken) if attempt < START_ATTEMPTS => continue,
                Err(e) => panic!(
                    "ringkv-server did not restart: {e}\n--- server stderr ---\n{}",
                    self.stderr_tail()
                ),
            }
        }
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .map_err(|e| StartError::Spawn(format!("opening {:?}: {e}", self.stderr_path)))?;
        let stderr_before = stderr.metadata().map(|m| m.len()).unwrap_or(0);
        let o = &self.options;
        let mut command = Command::new(server_binary());
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.addr().to_string())
            .arg("--shards")
            .arg(o.shards.to_string())
            .arg("--durability")
            .arg(&o.durability)
            .arg("--memory-mb")
            .arg(o.memory_mb.to_string())
            .arg("--pin")
            .arg("off")
            .args(&o.extra_args)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command
            .spawn()
            .map_err(|e| StartError::Spawn(format!("{command:?}: {e}")))?;
        self.child = Some(child);
        let mut ports = vec![self.addr()];
        ports.extend((0..o.shards).map(|s| self.shard_addr(s)));
        let deadline = Instant::now() + START_TIMEOUT;
        for addr in ports {
            loop {
                let child = self.child.as_mut().expect("spawned above");
                if let Some(status) = child
                    .try_wait()
                    .map_err(|e| StartError::Spawn(e.to_string()))?
                {
                    self.child = None;
                    return Err(
                        if self
                            .stderr_since(stderr_before)
                            .contains("cannot listen on")
                        {
                            StartError::PortTaken
                        } else {
                            StartError::Exited(status)
                        },
                    );
                }
                if answers_hello(addr) {
                    break;
                }
                if Instant::now() >= deadline {
                    self.kill();
                    return Err(StartError::TimedOut(addr));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() && self.is_running() {
            eprintln!(
                "--- ringkv-server state at the panic ---\n{}",
                self.diagnostics()
            );
        }
        self.kill();
        if std::thread::panicking() {
            let kept = self.temp.take().map(|t| t.keep());
            eprintln!(
                "--- ringkv-server stderr (port {}; files kept in {kept:?}) ---\n{}",
                self.base_port,
                self.stderr_tail()
            );
        }
    }
}

enum StartError {
    Spawn(String),
    Exited(ExitStatus),
    TimedOut(SocketAddr),
    PortTaken,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Spawn(e) => write!(f, "could not spawn it: {e}"),
            StartError::Exited(status) => write!(f, "it exited during start-up ({status})"),
            StartError::TimedOut(addr) => {
                write!(f, "{addr} accepted no connection within {START_TIMEOUT:?}")
            }
            StartError::PortTaken => write!(f, "a port it needs is in use"),
        }
    }
}

/// STATS over a new raw connection, with a 5 s limit on every step.
fn stats_over_fresh_connection(
    addr: SocketAddr,
) -> std::io::Result<Vec<crate::raw::RawShardStats>> {
    let mut conn = crate::raw::RawConn::try_connect_only(addr)?;
    conn.stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.try_send(&crate::raw::client_hello(1))?;
    conn.read_server_hello()?;
    conn.try_send(&crate::raw::frame(1, crate::raw::op::STATS, 0, &[]))?;
    let frame = conn.read_frame()?;
    if frame.status != crate::raw::code::OK {
        return Err(std::io::Error::other(format!(
            "STATS answered status {}: {}",
            frame.status,
            frame.error_message()
        )));
    }
    crate::raw::try_parse_stats(&frame.body)
        .ok_or_else(|| std::io::Error::other("malformed STATS body"))
}

/// Whether a ringkv server answers a client hello at `addr` (with any status: a refusal
/// still proves it is listening). A bare TCP connect is not enough: a killed server's
/// listeners can still complete connections into their backlog for a moment.
pub fn answers_hello(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let mut hello = [0u8; 16];
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_ok()
        && stream.write_all(b"RKVC\x01\x00\x00\x00").is_ok()
        && stream.read_exact(&mut hello).is_ok()
        && &hello[..4] == b"RKVS"
}

/// Next candidate block; starts at a pid-derived offset.
fn next_port_candidate(span: u32) -> u32 {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let range = PORT_RANGE_END - PORT_RANGE_START;
    let next = NEXT.get_or_init(|| AtomicU32::new((std::process::id().wrapping_mul(7919)) % range));
    let offset = next.fetch_add(span, Ordering::Relaxed) % range;
    let offset = if offset + span > range { 0 } else { offset };
    PORT_RANGE_START + offset
}

/// A base port such that `base..=base + 1 + shards` are all free right now.
pub fn reserve_ports(shards: u16) -> u16 {
    let span = u32::from(shards) + 2;
    for _ in 0..1000 {
        let base = next_port_candidate(span);
        let all_free = (base..base + span).all(|port| {
            let port = u16::try_from(port).expect("ports stay below 32000");
            TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        if all_free {
            return u16::try_from(base).expect("ports stay below 32000");
        }
    }
    panic!("no block of {span} free ports in {PORT_RANGE_START}..{PORT_RANGE_END}");
}

/// The server binary: `RINGKV_SERVER_BIN`, or built once per test process with cargo.
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| workspace_binary("RINGKV_SERVER_BIN", "ringkv-server", "ringkv-server"))
        .clone()
}

/// The `ringkv-bench` binary: `$RINGKV_BENCH_BIN` if set, else built (debug) by cargo on
/// first use.
pub fn bench_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| workspace_binary("RINGKV_BENCH_BIN", "ringkv-bench", "ringkv-bench"))
        .clone()
}

/// The `ringkv-admin` binary: `$RINGKV_ADMIN_BIN` if set, else built (debug) by cargo on
/// first use.
pub fn admin_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| workspace_binary("RINGKV_ADMIN_BIN", "ringkv-admin", "ringkv-admin"))
        .clone()
}

/// Runs `ringkv-admin ARGS` and returns its exit code, stdout and stderr.
pub fn admin(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(admin_binary())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ringkv-admin {args:?}: {e}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `ringkv-admin ARGS`, asserts it succeeded, and returns its stdout.
pub fn admin_ok(args: &[&str]) -> String {
    let (code, out, err) = admin(args);
    assert_eq!(code, 0, "ringkv-admin {args:?} failed:\n{out}\n{err}");
    out
}

/// `$env_var` if set, else binary `bin` of `package`, built (debug) with cargo.
fn workspace_binary(env_var: &str, package: &str, bin: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent: the workspace root")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "-p", package, "--bin", bin])
        .current_dir(&workspace)
        .output()
        .unwrap_or_else(|e| panic!("running {cargo:?} build: {e}"));
    assert!(
        output.status.success(),
        "building {bin} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // A relative CARGO_TARGET_DIR is relative to where cargo ran: the workspace.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    let path = target.join("debug").join(bin);
    assert!(path.is_file(), "built {bin}, but {path:?} is missing");
    path
}

/// Resident set size of process `pid` in bytes (VmRSS in /proc/PID/status).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_else(|| panic!("no VmRSS line in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unparsable {line:?}"));
    kib << 10
}

//! End-to-end tests of ringkv-client against the real `ringkv-server` binary.
//!
//! Each test starts its own server (2 shards, `--pin off --durability sync --memory-mb 128`)
//! in a fresh temp data dir on free ports, waits until the base port and every shard port
//! accept, and kills the process when its guard drops. The binary is taken from
//! `RINGKV_SERVER_BIN` if set; otherwise it is built once with
//! `cargo build -p ringkv-server --bin ringkv-server` (same profile as this test) and taken
//! from the workspace target dir.

use futures_lite::future::{block_on, zip};
use ringkv_client::{
    AsyncClient, BatchOp, Client, ClientConfig, ClientError, Connection, ErrorCode, Response,
};
use ringkv_proto::frame::{begin_frame, end_frame};
use ringkv_proto::{slot_of, HEADER_BYTES, KEY_BYTES_MAX};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SHARDS: u16 = 2;
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Node memory budget. `--memory-mb` is for the whole node and each shard needs at least
/// 48 MiB, so 2 shards need 96 or more (`--memory-mb 64` is refused at start-up).
const MEMORY_MB: &str = "128";

/// The server binary: `RINGKV_SERVER_BIN`, or built once next to this test's profile dir.
fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("RINGKV_SERVER_BIN") {
            return PathBuf::from(bin);
        }
        // target/<profile>/deps/against_server-<hash> -> target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable in target/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "ringkv-server", "--bin", "ringkv-server"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p ringkv-server failed");
        profile_dir.join("ringkv-server")
    })
}

/// A running server, killed on drop.
struct Server {
    child: Child,
    base_port: u16,
    data_dir: PathBuf,
    _temp: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let log = temp.path().join("server.log");
        let base_port = free_ports(SHARDS);
        let mut server = Self {
            child: spawn(&data_dir, base_port, &log),
            base_port,
            data_dir,
            _temp: temp,
            log,
        };
        server.wait_ready();
        server
    }

    /// Kills the process and starts a new one on the same ports and data dir. The new
    /// process is started again while it fails to bind its ports: ringkv-server cannot rebind
    /// while the server side of the old connections lingers in FIN-WAIT-2/TIME-WAIT (about
    /// 60 s), because its glommio listeners set SO_REUSEPORT but not SO_REUSEADDR.
    fn restart(&mut self, rebind_timeout: Duration) {
        self.kill();
        let began = Instant::now();
        let deadline = began + rebind_timeout;
        loop {
            self.child = spawn(&self.data_dir, self.base_port, &self.log);
            match self.try_ready() {
                Ok(()) => {
                    eprintln!("server restarted after {:?}", began.elapsed());
                    return;
                }
                Err(status) => {
                    let log = self.log_text();
                    assert!(
                        log.contains("Address already in use") && Instant::now() < deadline,
                        "ringkv-server exited with {status}: {log}"
                    );
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.base_port)
    }

    fn wait_ready(&mut self) {
        if let Err(status) = self.try_ready() {
            panic!("ringkv-server exited with {status}: {}", self.log_text());
        }
    }

    /// Waits until the base port and every shard port accept; `Err` if the process exits.
    fn try_ready(&mut self) -> Result<(), std::process::ExitStatus> {
        let deadline = Instant::now() + START_TIMEOUT;
        let ports: Vec<u16> = (0..=SHARDS).map(|s| self.base_port + s).collect();
        for port in ports {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(status);
                }
                // A handshake, not just a TCP connect: a killed server's listeners can accept
                // into their backlog for a moment after the process is gone (see `restart`).
                if Connection::connect(format!("127.0.0.1:{port}"), Duration::from_secs(1)).is_ok()
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "port {port} not accepting after {START_TIMEOUT:?}: {}",
                    self.log_text()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

fn spawn(data_dir: &Path, base_port: u16, log: &Path) -> Child {
    let log_file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(server_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{base_port}")])
        .args(["--shards", &SHARDS.to_string()])
        .args([
            "--pin",
            "off",
            "--durability",
            "sync",
            "--memory-mb",
            MEMORY_MB,
        ])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start ringkv-server")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A base port such that it and the next `shards` ports are free right now.
fn free_ports(shards: u16) -> u16 {
    for _ in 0..100 {
        let base = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port();
        if base.checked_add(shards).is_none() {
            continue;
        }
        let all_free = (1..=shards).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no run of {} free ports found", shards + 1);
}

fn client(server: &Server) -> Client {
    Client::connect(server.addr(), ClientConfig::default()).expect("client connects")
}

#[test]
fn data_ops_against_a_two_shard_server() {
    let server = Server::start();
    let c = client(&server);
    let topology = c.cached_topology().clone();
    assert_eq!(topology.shard_ports.len(), usize::from(SHARDS));
    for (shard, port) in topology.shard_ports.iter().enumerate() {
        assert_eq!(
            usize::from(*port),
            usize::from(server.base_port) + 1 + shard
        );
    }
    assert_eq!(c.topology().unwrap(), topology);
    c.ping().unwrap();

    c.put("alpha", "1").unwrap();
    assert_eq!(c.get("alpha").unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.get("never-written").unwrap(), None);
    c.delete("alpha").unwrap();
    assert_eq!(c.get("alpha").unwrap(), None);

    let keys: Vec<String> = (0..500).map(|i| format!("key:{i:04}")).collect();
    let ops: Vec<BatchOp<'_>> = keys
        .iter()
        .map(|k| BatchOp::Put {
            key: k.as_bytes(),
            value: k.as_bytes(),
        })
        .collect();
    let shards_used: std::collections::BTreeSet<u16> = keys
        .iter()
        .map(|k| c.router().shard_of_key(k.as_bytes()))
        .collect();
    assert_eq!(
        shards_used.len(),
        usize::from(SHARDS),
        "the batch spans shards"
    );
    assert_eq!(c.batch(&ops).unwrap(), 500);
    let deletes = [BatchOp::Delete { key: b"key:0000" }];
    assert_eq!(c.batch(&deletes).unwrap(), 1);

    let mut asked: Vec<&str> = keys.iter().map(String::as_str).rev().collect();
    asked.push("missing");
    let values = c.mget(&asked).unwrap();
    assert_eq!(values.len(), asked.len());
    for (key, value) in asked.iter().zip(&values) {
        match *key {
            "missing" | "key:0000" => assert_eq!(value, &None, "{key}"),
            k => assert_eq!(value.as_deref(), Some(k.as_bytes()), "{k}"),
        }
    }

    for i in 0..20 {
        c.put(format!("{{tag}}:{i:02}"), format!("v{i}")).unwrap();
    }
    let slot = c.scan_slot("tag", b"", b"", usize::MAX).unwrap();
    let slot_keys: Vec<String> = slot
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("{{tag}}:{i:02}")).collect();
    assert_eq!(slot_keys, expected);
    let ranged = c
        .scan_slot(slot_of(b"tag"), b"{tag}:05", b"{tag}:10", usize::MAX)
        .unwrap();
    assert_eq!(ranged.len(), 5);
    assert_eq!(ranged[0], (b"{tag}:05".to_vec(), b"v5".to_vec()));
    assert_eq!(c.scan_slot("tag", b"", b"", 7).unwrap().len(), 7);

    let all = c.scan_all(usize::MAX).unwrap();
    assert_eq!(all.len(), 499 + 20);
    let mut ordered = all.clone();
    ordered.sort_by(|(a, _), (b, _)| (slot_of(a), a).cmp(&(slot_of(b), b)));
    assert_eq!(all, ordered, "scan_all is in (slot, key) order");
    let iterated: Vec<_> = c.scan_all_iter().map(Result::unwrap).collect();
    assert_eq!(iterated, all);

    let stats = c.stats().unwrap();
    assert!(!stats.is_empty());
}

#[test]
fn paging_with_small_pages() {
    let server = Server::start();
    let config = ClientConfig {
        scan_page: 3,
        ..ClientConfig::default()
    };
    let c = Client::connect(server.addr(), config).unwrap();
    for i in 0..25 {
        c.put(format!("{{p}}{i:02}"), "x").unwrap();
        c.put(format!("spread-{i}"), "y").unwrap();
    }
    assert_eq!(c.scan_slot("p", b"", b"", usize::MAX).unwrap().len(), 25);
    assert_eq!(c.scan_all(usize::MAX).unwrap().len(), 50);
    let mut cursor = Vec::new();
    let mut pages = 0;
    let mut seen = 0;
    loop {
        let page = c.scan_page(&cursor, 4).unwrap();
        assert!(page.entries.len() <= 4);
        seen += page.entries.len();
        pages += 1;
        if page.next.is_empty() {
            break;
        }
        cursor = page.next;
    }
    assert_eq!(seen, 50);
    assert!(pages >= 13);
}

#[test]
fn ingest_100k_keys_then_read_a_sample() {
    let server = Server::start();
    let c = client(&server);
    let mut ingest = c.ingest().unwrap();
    let key = |i: u64| {
        let mut k = *b"ingest:\0\0\0\0\0\0\0\0\0";
        k[8..].copy_from_slice(&i.to_be_bytes());
        k
    };
    let value = |i: u64| {
        let mut v = [0u8; 100];
        v[..8].copy_from_slice(&i.to_le_bytes());
        v
    };
    let began = Instant::now();
    for i in 0..100_000u64 {
        ingest.put(&key(i), &value(i)).unwrap();
    }
    let counters = ingest.flush().unwrap();
    let elapsed = began.elapsed();
    eprintln!(
        "ingested 100000 keys in {elapsed:?} ({:.0} ops/s, debug build): {counters:?}",
        100_000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(counters.ops_sent, 100_000);
    assert_eq!(counters.ops_acked, 100_000);
    assert_eq!(counters.ops_failed, 0);
    assert_eq!(counters.frames_acked, counters.frames_sent);

    let sample: Vec<u64> = (0..100_000).step_by(997).collect();
    let keys: Vec<[u8; 16]> = sample.iter().map(|&i| key(i)).collect();
    let values = c.mget(&keys).unwrap();
    for (&i, v) in sample.iter().zip(&values) {
        assert_eq!(v.as_deref(), Some(&value(i)[..]), "key {i}");
    }
    for &i in sample.iter().take(20) {
        assert_eq!(c.get(key(i)).unwrap().as_deref(), Some(&value(i)[..]));
    }
    assert_eq!(c.scan_all(usize::MAX).unwrap().len(), 100_000);
}

#[test]
fn errors_carry_their_code() {
    let server = Server::start();
    let c = client(&server);
    // Refused by the client before sending.
    let long_key = vec![b'k'; KEY_BYTES_MAX + 1];
    assert!(matches!(
        c.put(&long_key, "x"),
        Err(ClientError::InvalidArgument(_))
    ));
    assert!(matches!(c.get(""), Err(ClientError::InvalidArgument(_))));

    // Refused by the server: a GET frame whose key is over 16 KiB, written by hand.
    let mut conn = Connection::connect(server.addr(), Duration::from_secs(5)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let id = conn.next_id();
    let buf = conn.send_buffer();
    let start = begin_frame(buf, id, ringkv_proto::opcode::GET, 0, ErrorCode::OK);
    buf.extend_from_slice(&(long_key.len() as u16).to_le_bytes());
    buf.extend_from_slice(&long_key);
    end_frame(buf, start);
    conn.flush().unwrap();
    let (answer_id, code) = conn
        .recv(|answer_id, r| match r {
            Response::Error { code, .. } => (answer_id, code),
            other => panic!("expected an error, got {other:?}"),
        })
        .unwrap();
    assert_eq!(answer_id, id);
    assert_eq!(code, ErrorCode::INVALID_ARGUMENT);

    // An unknown opcode: UNKNOWN_OPCODE, then the server closes the connection.
    let mut conn = Connection::connect(server.addr(), Duration::from_secs(5)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let id = conn.next_id();
    let buf = conn.send_buffer();
    let start = begin_frame(buf, id, 0x7f, 0, ErrorCode::OK);
    end_frame(buf, start);
    conn.flush().unwrap();
    let code = conn
        .recv(|_, r| match r {
            Response::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        })
        .unwrap();
    assert_eq!(code, ErrorCode::UNKNOWN_OPCODE);
    assert!(conn.recv(|_, _| ()).is_err(), "connection closed after it");

    // A header announcing a frame over the maximum: FRAME_TOO_LARGE.
    let mut conn = Connection::connect(server.addr(), Duration::from_secs(5)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let max = conn.max_frame_bytes();
    let id = conn.next_id();
    let buf = conn.send_buffer();
    begin_frame(buf, id, ringkv_proto::opcode::PUT, 0, ErrorCode::OK);
    buf[..4].copy_from_slice(&(max - HEADER_BYTES as u32 + 1).to_le_bytes());
    conn.flush().unwrap();
    let code = conn
        .recv(|_, r| match r {
            Response::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        })
        .unwrap();
    assert_eq!(code, ErrorCode::FRAME_TOO_LARGE);

    // The server still serves others.
    c.put("still-up", "yes").unwrap();
    assert_eq!(c.get("still-up").unwrap(), Some(b"yes".to_vec()));
}

#[test]
fn pipelined_low_level_connection() {
    let server = Server::start();
    let mut conn = Connection::connect(server.addr(), Duration::from_secs(5)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(conn.hello().shard_count, SHARDS);
    let mut expected = std::collections::HashMap::new();
    for i in 0..1000u32 {
        let key = format!("pipe:{i}");
        let id = conn.send_put(key.as_bytes(), &i.to_le_bytes()).unwrap();
        expected.insert(id, ());
    }
    conn.flush().unwrap();
    for _ in 0..1000 {
        let id = conn
            .recv(|id, r| {
                assert_eq!(r, Response::Done);
                id
            })
            .unwrap();
        assert!(
            expected.remove(&id).is_some(),
            "answer to an unknown id {id}"
        );
    }
    let mut gets = std::collections::HashMap::new();
    for i in 0..1000u32 {
        let id = conn.send_get(format!("pipe:{i}").as_bytes()).unwrap();
        gets.insert(id, i);
    }
    conn.flush().unwrap();
    for _ in 0..1000 {
        let (id, value) = conn
            .recv(|id, r| match r {
                Response::Value(Some(v)) => (id, v.to_vec()),
                other => panic!("{other:?}"),
            })
            .unwrap();
        assert_eq!(value, gets[&id].to_le_bytes());
    }
}

#[test]
fn many_threads_share_one_client() {
    let server = Server::start();
    let c = client(&server);
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = c.clone();
            s.spawn(move || {
                for i in 0..500 {
                    let key = format!("thread{t}:{i}");
                    c.put(&key, key.as_bytes()).unwrap();
                    assert_eq!(c.get(&key).unwrap().as_deref(), Some(key.as_bytes()));
                }
            });
        }
    });
    assert_eq!(c.scan_all(usize::MAX).unwrap().len(), 2000);
}

#[test]
fn async_client_against_the_server() {
    let server = Server::start();
    block_on(async {
        let c = AsyncClient::connect(server.addr(), ClientConfig::default())
            .await
            .unwrap();
        c.ping().await.unwrap();
        let (a, b) = zip(c.put("async:a", "1"), c.put("async:b", "2")).await;
        a.unwrap();
        b.unwrap();
        assert_eq!(c.get("async:a").await.unwrap(), Some(b"1".to_vec()));
        let ops = [
            BatchOp::Put {
                key: b"{as}:1",
                value: b"x",
            },
            BatchOp::Put {
                key: b"{as}:2",
                value: b"y",
            },
            BatchOp::Delete { key: b"async:a" },
        ];
        assert_eq!(c.batch(&ops).await.unwrap(), 3);
        assert_eq!(
            c.mget(&["async:a", "async:b", "{as}:2"]).await.unwrap(),
            vec![None, Some(b"2".to_vec()), Some(b"y".to_vec())]
        );
        assert_eq!(c.scan_slot("as", b"", b"", 10).await.unwrap().len(), 2);
        assert_eq!(c.scan_all(usize::MAX).await.unwrap().len(), 3);
        c.delete("async:b").await.unwrap();
        assert_eq!(c.get("async:b").await.unwrap(), None);
        assert_eq!(c.topology().await.unwrap().shard_ports.len(), 2);
    });
}

#[test]
fn a_dead_server_fails_calls_promptly_and_clearly() {
    let mut server = Server::start();
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    };
    let c = Client::connect(server.addr(), config).unwrap();
    c.put("before", "1").unwrap();
    server.kill();
    let began = Instant::now();
    for _ in 0..3 {
        // The first call on a link may see it die (I/O error); later ones try to reconnect
        // and are refused (connect error). None may hang or succeed.
        match c.get("before") {
            Err(ClientError::Io { .. } | ClientError::Connect { .. } | ClientError::Closed) => {}
            other => panic!("expected a connection error, got {other:?}"),
        }
    }
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
}

/// Regression test for the server's listeners lacking SO_REUSEADDR: a restart on the same
/// ports used to fail for about 60 s while the old connections sat in TIME-WAIT.
#[test]
fn reconnects_after_a_server_restart() {
    let mut server = Server::start();
    let c = client(&server);
    c.put("durable", "yes").unwrap();
    server.restart(Duration::from_secs(180));
    // The old connections are dead: the first call on each may fail, later ones reconnect.
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        match c.get("durable") {
            Ok(value) => break value,
            Err(e) if e.is_retryable() || matches!(e, ClientError::Connect { .. }) => {
                assert!(
                    Instant::now() < deadline,
                    "no reconnect: {e}; server log: {}",
                    server.log_text()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        value,
        Some(b"yes".to_vec()),
        "acknowledged under sync durability"
    );
}

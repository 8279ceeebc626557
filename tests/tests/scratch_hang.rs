use ringkv_client::{Client, ClientConfig};
use ringkv_tests::dataset::{key, value, KEY_BYTES};
use ringkv_tests::raw::{self, op, RawConn};
use ringkv_tests::server::{ServerOptions, ServerProcess};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn scratch() {
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut server = ServerProcess::start(ServerOptions::default());
    {
        let client = Client::connect(server.addr(), ClientConfig::default()).unwrap();
        let mut ingest = client.ingest().unwrap();
        for i in 0..n {
            ingest.put(&key(i), &value(i, 1)).unwrap();
        }
        ingest.flush().unwrap();
        server.kill();
    }
    server.restart_on_new_ports();
    let client = Client::connect(
        server.addr(),
        ClientConfig {
            request_timeout: Duration::from_secs(20),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let next = AtomicUsize::new(0);
    let stuck = AtomicBool::new(false);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for th in 0..2 {
            let client = &client;
            let next = &next;
            let stuck = &stuck;
            s.spawn(move || loop {
                let c = next.fetch_add(1, Ordering::Relaxed) as u64;
                let start = c * 4096;
                if start >= n || stuck.load(Ordering::Relaxed) {
                    break;
                }
                let keys: Vec<[u8; KEY_BYTES]> = (start..(start + 4096).min(n)).map(key).collect();
                let t = Instant::now();
                match client.mget(&keys) {
                    Ok(v) => assert!(v.iter().all(|x| x.is_some())),
                    Err(e) => {
                        println!(
                            "thread {th} chunk {c} after {:?} at {:?}: {e}",
                            t.elapsed(),
                            t0.elapsed()
                        );
                        stuck.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
    });
    println!(
        "read phase done at {:?}, stuck={}",
        t0.elapsed(),
        stuck.load(Ordering::Relaxed)
    );
    if stuck.load(Ordering::Relaxed) {
        for addr in [server.addr(), server.shard_addr(0), server.shard_addr(1)] {
            let mut c = RawConn::connect(addr);
            c.ping(b"alive?");
            println!("{addr}: ping ok");
            let r = c.call(op::GET, &raw::key_body(&key(5)));
            println!("{addr}: GET status {} len {}", r.status, r.body.len());
        }
        let mut c = RawConn::connect(server.addr());
        let stats = raw::parse_stats(&c.call_ok(op::STATS, &[]));
        for (s, cs) in &stats {
            println!(
                "shard {s}: {:?}",
                cs.iter()
                    .filter(|(n, _)| [
                        "requests",
                        "reads",
                        "bytes_in",
                        "bytes_out",
                        "connections_open",
                        "cache_misses",
                        "cache_hits"
                    ]
                    .contains(&n.as_str()))
                    .collect::<Vec<_>>()
            );
        }
        let out = std::process::Command::new("gdb")
            .args([
                "-p",
                &server.pid().to_string(),
                "-batch",
                "-ex",
                "thread apply all bt 30",
            ])
            .output()
            .unwrap();
        std::fs::write("/tmp/exp/hang_gdb.txt", &out.stdout).unwrap();
        println!("gdb written");
        // And after a while again
        std::thread::sleep(Duration::from_secs(5));
        let keys: Vec<[u8; KEY_BYTES]> = (0..4096).map(key).collect();
        let t = Instant::now();
        println!(
            "fresh mget: {:?} in {:?}",
            client.mget(&keys).map(|v| v.len()),
            t.elapsed()
        );
        let c2 = Client::connect(server.addr(), ClientConfig::default()).unwrap();
        let t = Instant::now();
        println!(
            "new client mget: {:?} in {:?}",
            c2.mget(&keys).map(|v| v.len()),
            t.elapsed()
        );
        panic!("stuck");
    }
}

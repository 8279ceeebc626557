//! `ringkv-server --background-write-mb-per-s`: a real server's flushes keep to the rate
//! (the time they waited shows in STATS), and the data is all there afterwards.

use ringkv_client::{Client, ClientConfig};
use ringkv_tests::server::{ServerOptions, ServerProcess};

const VALUE: [u8; 1000] = [b'p'; 1000];
const KEYS: u32 = 4000;

#[test]
fn a_slow_rate_paces_flushes_and_loses_nothing() {
    // 1 MB/s per shard: flushing about 2 MB per shard must wait for about 2 s of grants.
    let server = ServerProcess::start(ServerOptions {
        durability: "none".into(),
        ..ServerOptions::with_args(&["--background-write-mb-per-s", "1"])
    });
    let client = Client::connect(server.addr(), ClientConfig::default()).expect("connect");
    let mut ingest = client.ingest().expect("ingest");
    for i in 0..KEYS {
        ingest
            .put(format!("pace-{i:06}").as_bytes(), &VALUE)
            .expect("put");
    }
    ingest.flush().expect("ingest flush");
    client.flush(None).expect("flush memtables");

    let stats = client.stats().expect("stats");
    assert_eq!(stats.len(), 2);
    for s in &stats {
        let flushed = s.get("flushes").expect("flushes");
        let paced = s.get("background_paced_micros").expect("paced counter");
        assert!(flushed >= 1, "shard {} did not flush", s.shard);
        // The shard wrote at least ~1.5 MB of tables at 1 MB/s; every grant after a table's
        // first waits its turn.
        assert!(
            paced >= 500_000,
            "shard {}: flush writes waited only {paced} us",
            s.shard
        );
    }
    for i in (0..KEYS).step_by(37) {
        let key = format!("pace-{i:06}");
        assert_eq!(
            client.get(key.as_bytes()).expect("get").as_deref(),
            Some(&VALUE[..]),
            "{key}"
        );
    }
}

//! Connects to a ringkv node and walks through the data operations: put, get, delete, a
//! batch, mget, a slot scan and a scan of everything.
//!
//! Run: `cargo run -p ringkv-client --example basic -- 127.0.0.1:7070`

use ringkv_client::{BatchOp, Client, ClientConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7070".to_string());
    let client = Client::connect(addr.as_str(), ClientConfig::default())?;
    println!(
        "connected to {addr}: {} shards at {:?}, ping {:?}",
        client.router().shard_count(),
        client.shard_addrs(),
        client.ping()?
    );

    client.put("greeting", "hello")?;
    let value = client.get("greeting")?;
    println!(
        "get greeting -> {:?}",
        value.as_deref().map(String::from_utf8_lossy)
    );
    client.delete("greeting")?;
    println!("after delete -> {:?}", client.get("greeting")?);

    // Keys with the same hash tag share a slot: this batch is atomic and scannable in order.
    let ops = [
        BatchOp::Put {
            key: b"{user42}:name",
            value: b"Ada",
        },
        BatchOp::Put {
            key: b"{user42}:mail",
            value: b"ada@example.com",
        },
        BatchOp::Put {
            key: b"{user42}:city",
            value: b"London",
        },
        BatchOp::Put {
            key: b"elsewhere",
            value: b"another slot",
        },
    ];
    println!("batch applied {} ops", client.batch(&ops)?);

    let values = client.mget(&["{user42}:name", "missing", "elsewhere"])?;
    for (key, value) in ["{user42}:name", "missing", "elsewhere"].iter().zip(values) {
        println!(
            "mget {key} -> {:?}",
            value.as_deref().map(String::from_utf8_lossy)
        );
    }

    for (key, value) in client.scan_slot("user42", b"", b"", 100)? {
        println!(
            "slot scan {} = {}",
            String::from_utf8_lossy(&key),
            String::from_utf8_lossy(&value)
        );
    }
    let everything = client.scan_all(1000)?;
    println!(
        "scan_all returned {} entries (at most 1000)",
        everything.len()
    );
    for shard in client.stats()? {
        println!(
            "shard {} stats: {} counters",
            shard.shard,
            shard.values.len()
        );
    }
    Ok(())
}

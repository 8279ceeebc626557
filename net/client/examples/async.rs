//! The async client driven by a minimal executor (`futures_lite::future::block_on`): it
//! needs no runtime, so the same code runs under tokio, glommio or async-std.
//!
//! Run: `cargo run -p ringkv-client --example async -- 127.0.0.1:7070`

use futures_lite::future::{block_on, zip};
use ringkv_client::{AsyncClient, BatchOp, ClientConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7070".to_string());
    block_on(async {
        let client = AsyncClient::connect(addr.clone(), ClientConfig::default()).await?;
        println!("connected to {addr}, ping {:?}", client.ping().await?);
        // Two requests in flight at once, on whichever shards own the keys.
        let (a, b) = zip(client.put("async:a", "1"), client.put("async:b", "2")).await;
        a?;
        b?;
        let ops = [
            BatchOp::Put {
                key: b"{async}:x",
                value: b"10",
            },
            BatchOp::Delete { key: b"async:a" },
        ];
        println!("batch applied {} ops", client.batch(&ops).await?);
        let values = client.mget(&["async:a", "async:b", "{async}:x"]).await?;
        println!("mget -> {values:?}");
        let slot = client.scan_slot("async", b"", b"", 10).await?;
        println!("slot scan -> {} entries", slot.len());
        Ok(())
    })
}

//! Client settings: [`ClientConfig`] for [`crate::Client`] and [`crate::AsyncClient`], and
//! [`IngestConfig`] for the bulk-loading [`crate::Ingest`] handle.
//!
//! Every queue and window the client keeps is bounded by a field here. `validate` rejects
//! values that would make a bound meaningless (zero connections, a zero window, a batch
//! larger than the protocol allows) before any connection is opened. Read by the connect
//! paths of every handle.

use crate::error::ClientError;
use ringkv_proto::request::BATCH_OPS_MAX;
use std::time::Duration;

/// Default number of operations in one ingest BATCH frame.
pub const BATCH_OPS_DEFAULT: u32 = 256;
/// Default size at which an ingest BATCH frame is sent.
pub const BATCH_BYTES_DEFAULT: usize = 256 << 10;
/// Default number of BATCH frames in flight per ingest connection.
pub const PIPELINE_DEFAULT: usize = 32;

/// Settings of [`crate::Client`] and [`crate::AsyncClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Time allowed for the TCP connect plus the handshake of each connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed for one request, from the moment it is queued until its answer arrives
    /// (default 30 s). Checked by the connection's reader about every `request_timeout / 8`
    /// (between 10 ms and 250 ms), so a timeout fires up to that much late.
    pub request_timeout: Duration,
    /// Connections opened to each shard; calls are spread over them round-robin (default 1).
    pub connections_per_shard: usize,
    /// Requests sent and not yet answered, per connection (default 1024). A caller that
    /// finds the window full waits (up to `request_timeout`) instead of growing a queue.
    pub max_in_flight: usize,
    /// Entries asked for per SCAN page (default 1024, at most 65536).
    pub scan_page: u32,
    /// Ingest handles made with [`crate::Client::ingest`]: operations per BATCH frame
    /// (default 256).
    pub batch_ops: u32,
    /// Ingest: a BATCH frame is sent once it reaches this many bytes (default 256 KiB).
    pub batch_bytes: usize,
    /// Ingest: BATCH frames in flight per connection (default 32).
    pub pipeline: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            connections_per_shard: 1,
            max_in_flight: 1024,
            scan_page: 1024,
            batch_ops: BATCH_OPS_DEFAULT,
            batch_bytes: BATCH_BYTES_DEFAULT,
            pipeline: PIPELINE_DEFAULT,
        }
    }
}

impl ClientConfig {
    /// Checks that every bound is usable.
    pub fn validate(&self) -> Result<(), ClientError> {
        positive("connect_timeout", self.connect_timeout.as_nanos())?;
        positive("request_timeout", self.request_timeout.as_nanos())?;
        positive("connections_per_shard", self.connections_per_shard as u128)?;
        positive("max_in_flight", self.max_in_flight as u128)?;
        positive("scan_page", u128::from(self.scan_page))?;
        if self.scan_page > ringkv_proto::request::SCAN_LIMIT_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "scan_page {} exceeds the protocol's maximum of {}",
                self.scan_page,
                ringkv_proto::request::SCAN_LIMIT_MAX
            )));
        }
        self.ingest().validate()
    }

    /// The ingest settings these client settings imply.
    pub fn ingest(&self) -> IngestConfig {
        IngestConfig {
            connect_timeout: self.connect_timeout,
            ack_timeout: self.request_timeout,
            batch_ops: self.batch_ops,
            batch_bytes: self.batch_bytes,
            pipeline: self.pipeline,
        }
    }
}

/// Settings of an [`crate::Ingest`] handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Time allowed for the TCP connect plus the handshake of each connection (default 5 s).
    pub connect_timeout: Duration,
    /// Longest wait for the next acknowledgement when the window is full or during `flush`
    /// (default 30 s).
    pub ack_timeout: Duration,
    /// A BATCH frame is sent once it holds this many operations (default 256, at most 65536).
    pub batch_ops: u32,
    /// A BATCH frame is sent once it reaches this many bytes (default 256 KiB; capped at the
    /// server's maximum frame size).
    pub batch_bytes: usize,
    /// BATCH frames sent and not yet acknowledged, per connection (default 32). When the
    /// window is full, the ingest handle blocks reading acknowledgements.
    pub pipeline: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        ClientConfig::default().ingest()
    }
}

impl IngestConfig {
    /// Checks that every bound is usable.
    pub fn validate(&self) -> Result<(), ClientError> {
        positive("connect_timeout", self.connect_timeout.as_nanos())?;
        positive("ack_timeout", self.ack_timeout.as_nanos())?;
        positive("batch_ops", u128::from(self.batch_ops))?;
        positive("batch_bytes", self.batch_bytes as u128)?;
        positive("pipeline", self.pipeline as u128)?;
        if self.batch_ops > BATCH_OPS_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "batch_ops {} exceeds the protocol's maximum of {BATCH_OPS_MAX}",
                self.batch_ops
            )));
        }
        Ok(())
    }
}

fn positive(name: &str, value: u128) -> Result<(), ClientError> {
    if value == 0 {
        return Err(ClientError::InvalidArgument(format!(
            "{name} must be greater than zero"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let c = ClientConfig::default();
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.connections_per_shard, 1);
        assert_eq!(c.max_in_flight, 1024);
        assert_eq!(c.batch_ops, 256);
        assert_eq!(c.batch_bytes, 256 << 10);
        assert_eq!(c.pipeline, 32);
        c.validate().unwrap();
        IngestConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_bounds_are_rejected_by_name() {
        let c = ClientConfig {
            max_in_flight: 0,
            ..ClientConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("max_in_flight"), "{e}");
        let c = ClientConfig {
            pipeline: 0,
            ..ClientConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("pipeline"));
        let i = IngestConfig {
            batch_ops: BATCH_OPS_MAX + 1,
            ..IngestConfig::default()
        };
        assert!(i.validate().unwrap_err().to_string().contains("batch_ops"));
    }
}

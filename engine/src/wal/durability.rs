//! When a write counts as durable.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How the WAL makes writes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledge a write only after the fdatasync that covers it (group commit).
    #[default]
    Sync,
    /// Acknowledge once buffered; write and fdatasync every interval.
    Interval(Duration),
    /// Acknowledge once buffered; written to the segment, never fsynced.
    None,
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sync" => Ok(Durability::Sync),
            "none" => Ok(Durability::None),
            other => match other.strip_prefix("interval:") {
                Some(ms) => {
                    let ms: u64 = ms
                        .parse()
                        .map_err(|_| format!("bad interval in {other:?}: expected interval:MS"))?;
                    if ms == 0 {
                        return Err("interval:MS needs MS >= 1".into());
                    }
                    Ok(Durability::Interval(Duration::from_millis(ms)))
                }
                None => Err(format!(
                    "unknown durability {other:?}: expected sync, interval:MS or none"
                )),
            },
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Sync => write!(f, "sync"),
            Durability::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            Durability::None => write!(f, "none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["sync", "none", "interval:25"] {
            assert_eq!(s.parse::<Durability>().unwrap().to_string(), s);
        }
        assert!("interval:0".parse::<Durability>().is_err());
        assert!("interval:x".parse::<Durability>().is_err());
        assert!("fast".parse::<Durability>().is_err());
    }
}

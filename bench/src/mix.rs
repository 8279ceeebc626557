//! Workloads of `ringkv-bench run`: which operations, in which proportions, on which keys.
//!
//! | name | operations | keys |
//! |---|---|---|
//! | fillseq | put | every index once, in order |
//! | fillrandom | put | every index once, in a random order |
//! | overwrite | put | `--distribution` (uniform) |
//! | readrandom | get | `--distribution` (uniform) |
//! | readseq | get | every index once, in order |
//! | scan | scan of `--scan-length` | `--distribution` (uniform) start keys |
//! | ycsb-a | 50% get, 50% put | zipfian |
//! | ycsb-b | 95% get, 5% put | zipfian |
//! | ycsb-c | 100% get | zipfian |
//! | ycsb-d | 95% get, 5% insert | latest |
//! | ycsb-e | 95% scan of 1..=`--scan-length`, 5% insert | zipfian |
//! | ycsb-f | 50% get, 50% read-modify-write | zipfian |
//! | mix | `--mix get=90,put=10,...` | `--distribution` (uniform) |
//!
//! An insert writes a new key past the loaded ones (`--keys`); a read-modify-write reads a
//! key, then writes it once the read has answered (its latency covers both).

use crate::keys::Distribution;
use anyhow::{anyhow, bail, Result};

/// The kinds of operation, each with its own latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Get,
    Put,
    Insert,
    Scan,
    Rmw,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::Get,
        OpKind::Put,
        OpKind::Insert,
        OpKind::Scan,
        OpKind::Rmw,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Put => "put",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::Rmw => "rmw",
        }
    }

    pub fn writes(self) -> bool {
        matches!(self, OpKind::Put | OpKind::Insert | OpKind::Rmw)
    }
}

/// How a workload's operations map to keys beyond the distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Keys come from the distribution.
    Chosen,
    /// Operation `n` uses index `n` (mod the key space): every key once, in order.
    Sequential,
    /// Operation `n` uses a random-looking permutation of the key space.
    Permuted,
}

/// One workload, resolved.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    /// Weights of the operation kinds, indexed by [`OpKind::index`].
    pub weights: [u32; 5],
    pub distribution: Distribution,
    pub coverage: Coverage,
    /// Scan lengths are uniform in `scan_min..=scan_max`.
    pub scan_min: u32,
    pub scan_max: u32,
}

impl Spec {
    /// Resolves workload `name`. `distribution` overrides the default choice of keys (not
    /// the fixed orders of the fills and readseq); `mix` is the text of `--mix`.
    pub fn parse(
        name: &str,
        distribution: Option<Distribution>,
        mix: Option<&str>,
        scan_length: u32,
    ) -> Result<Spec> {
        use Distribution::*;
        let w = |get, put, insert, scan, rmw| [get, put, insert, scan, rmw];
        let (weights, default, coverage, scan_min) = match name {
            "fillseq" => (
                w(0, 100, 0, 0, 0),
                Uniform,
                Coverage::Sequential,
                scan_length,
            ),
            "fillrandom" => (w(0, 100, 0, 0, 0), Uniform, Coverage::Permuted, scan_length),
            "overwrite" => (w(0, 100, 0, 0, 0), Uniform, Coverage::Chosen, scan_length),
            "readrandom" => (w(100, 0, 0, 0, 0), Uniform, Coverage::Chosen, scan_length),
            "readseq" => (
                w(100, 0, 0, 0, 0),
                Uniform,
                Coverage::Sequential,
                scan_length,
            ),
            "scan" => (w(0, 0, 0, 100, 0), Uniform, Coverage::Chosen, scan_length),
            "ycsb-a" | "a" => (w(50, 50, 0, 0, 0), Zipfian, Coverage::Chosen, scan_length),
            "ycsb-b" | "b" => (w(95, 5, 0, 0, 0), Zipfian, Coverage::Chosen, scan_length),
            "ycsb-c" | "c" => (w(100, 0, 0, 0, 0), Zipfian, Coverage::Chosen, scan_length),
            "ycsb-d" | "d" => (w(95, 0, 5, 0, 0), Latest, Coverage::Chosen, scan_length),
            "ycsb-e" | "e" => (w(0, 0, 5, 95, 0), Zipfian, Coverage::Chosen, 1),
            "ycsb-f" | "f" => (w(50, 0, 0, 0, 50), Zipfian, Coverage::Chosen, scan_length),
            "mix" => {
                let text = mix.ok_or_else(|| anyhow!("workload mix needs --mix"))?;
                (parse_mix(text)?, Uniform, Coverage::Chosen, scan_length)
            }
            other => bail!(
                "unknown workload {other:?}: fillseq, fillrandom, overwrite, readrandom, \
                 readseq, scan, ycsb-a .. ycsb-f, mix"
            ),
        };
        let name = match name {
            "a" | "b" | "c" | "d" | "e" | "f" => format!("ycsb-{name}"),
            other => other.to_string(),
        };
        let distribution = match coverage {
            Coverage::Chosen => distribution.unwrap_or(default),
            _ => default,
        };
        Ok(Spec {
            name,
            weights,
            distribution,
            coverage,
            scan_min: scan_min.min(scan_length).max(1),
            scan_max: scan_length.max(1),
        })
    }

    /// Picks an operation kind from a uniform draw `r` in `0..total_weight()`.
    #[inline]
    pub fn kind_at(&self, mut r: u32) -> OpKind {
        for kind in OpKind::ALL {
            let weight = self.weights[kind.index()];
            if r < weight {
                return kind;
            }
            r -= weight;
        }
        OpKind::Get
    }

    pub fn total_weight(&self) -> u32 {
        self.weights.iter().sum()
    }

    pub fn has(&self, kind: OpKind) -> bool {
        self.weights[kind.index()] > 0
    }

    pub fn writes(&self) -> bool {
        OpKind::ALL.iter().any(|k| k.writes() && self.has(*k))
    }

    /// True for the fills that write every key of the space exactly once.
    pub fn covers_every_key(&self) -> bool {
        self.coverage != Coverage::Chosen && self.has(OpKind::Put)
    }
}

/// Parses `get=90,put=10,scan=5,insert=1,rmw=2` (weights, any scale; at least one positive).
pub fn parse_mix(text: &str) -> Result<[u32; 5]> {
    let mut weights = [0u32; 5];
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--mix {text:?}: expected NAME=WEIGHT, got {part:?}"))?;
        let kind = OpKind::ALL
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| {
                anyhow!("--mix {text:?}: unknown operation {name:?} (get, put, insert, scan, rmw)")
            })?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| anyhow!("--mix {text:?}: weight {weight:?} is not a whole number"))?;
        if weight > 1_000_000 {
            bail!("--mix {text:?}: weight {weight} is above 1,000,000");
        }
        weights[kind.index()] += weight;
    }
    if weights.iter().all(|&w| w == 0) {
        bail!("--mix {text:?}: no operation has a positive weight");
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycsb_workloads_have_their_published_mixes() {
        let spec = |n| Spec::parse(n, None, None, 100).unwrap();
        assert_eq!(spec("ycsb-a").weights, [50, 50, 0, 0, 0]);
        assert_eq!(spec("b").weights, [95, 5, 0, 0, 0]);
        assert_eq!(spec("b").name, "ycsb-b");
        assert_eq!(spec("ycsb-d").distribution, Distribution::Latest);
        let e = spec("ycsb-e");
        assert_eq!((e.scan_min, e.scan_max), (1, 100));
        assert_eq!(spec("ycsb-f").weights, [50, 0, 0, 0, 50]);
        assert!(spec("fillrandom").covers_every_key());
        assert!(!spec("overwrite").covers_every_key());
        // The fills keep their order whatever --distribution says.
        let fill = Spec::parse("fillseq", Some(Distribution::Zipfian), None, 10).unwrap();
        assert_eq!(fill.coverage, Coverage::Sequential);
        let read = Spec::parse("readrandom", Some(Distribution::Zipfian), None, 10).unwrap();
        assert_eq!(read.distribution, Distribution::Zipfian);
    }

    #[test]
    fn mixes_parse_and_pick_in_proportion() {
        let spec = Spec::parse("mix", None, Some("get=90, put=10"), 10).unwrap();
        assert_eq!(spec.total_weight(), 100);
        assert_eq!(spec.kind_at(0), OpKind::Get);
        assert_eq!(spec.kind_at(89), OpKind::Get);
        assert_eq!(spec.kind_at(90), OpKind::Put);
        assert_eq!(spec.kind_at(99), OpKind::Put);
        for bad in ["", "get", "get=x", "fly=1", "get=0", "get=2000000"] {
            assert!(parse_mix(bad).is_err(), "{bad:?}");
        }
        assert!(Spec::parse("mix", None, None, 10).is_err());
        assert!(Spec::parse("nothing", None, None, 10).is_err());
    }
}

//! Key choice for `ringkv-bench run`: the distributions of `--distribution`, the exact
//! coverage orders of the fill workloads, and the key format.
//!
//! Keys are `--key-size` bytes: the zero-padded decimal of an index below `--keys` (as in
//! db_bench), so any tool can name the key of index `i`.
//!
//! - uniform: every index equally likely.
//! - zipfian: a few indexes are hot (Gray et al.'s generator, as YCSB uses, with the
//!   exponent `--zipf-theta`); the rank is scrambled through a hash so that hot keys are
//!   spread over the key space and over shards, not bunched at its start.
//! - sequential: each thread walks its own run of indexes in order, wrapping around.
//! - latest: zipfian over recency: the most recently inserted indexes are the hottest
//!   (YCSB workload D).

use anyhow::{bail, Result};

/// How keys are picked.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    Uniform,
    Zipfian,
    Sequential,
    Latest,
}

/// A small, fast generator (splitmix64), one per thread.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub use crate::workload::{decimal_digits, splitmix64_mix as mix64};

/// Zipfian ranks in `0..n` with exponent `theta` (Gray et al., "Quickly generating
/// billion-record synthetic databases", as in YCSB's ZipfianGenerator). Rank 0 is the most
/// frequent. Building it sums `n` terms once.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: u64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
    half_pow_theta: f64,
}

impl Zipf {
    pub fn new(n: u64, theta: f64) -> Result<Self> {
        if n == 0 {
            bail!("a zipfian distribution needs at least one key");
        }
        if !(theta > 0.0 && theta < 1.0) {
            bail!("--zipf-theta must be in (0, 1), not {theta}");
        }
        let zeta = |count: u64| {
            (1..=count)
                .map(|i| 1.0 / (i as f64).powf(theta))
                .sum::<f64>()
        };
        let zeta_n = zeta(n);
        let zeta_2 = zeta(2.min(n));
        let eta = if n > 1 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n)
        } else {
            0.0
        };
        Ok(Zipf {
            n,
            alpha: 1.0 / (1.0 - theta),
            zeta_n,
            eta,
            half_pow_theta: 0.5f64.powf(theta),
        })
    }

    /// A rank in `0..n`.
    #[inline]
    pub fn rank(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1.min(self.n - 1);
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }
}

/// Replaces `out` with the key of `index`: zero-padded decimal, `key_size` bytes
/// ([`crate::workload::write_key`]; `run` refuses key spaces whose indexes do not fit).
#[inline]
pub fn make_key(index: u64, key_size: usize, out: &mut Vec<u8>) {
    out.clear();
    crate::workload::write_key(index, key_size, out);
}

/// A bijection of `0..keys` that looks random: a multiplier coprime with `keys`, plus an
/// offset, modulo `keys`. The fills use it to write every key exactly once in random order.
pub fn permute(n: u64, keys: u64) -> u64 {
    let mut multiplier = 0x9E37_79B9_7F4A_7C15 % keys;
    while gcd(multiplier, keys) != 1 {
        multiplier += 1;
    }
    ((u128::from(n % keys) * u128::from(multiplier) + 0x5851_F42D) % u128::from(keys)) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Picks key indexes for one thread.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    distribution: Distribution,
    keys: u64,
    zipf: Option<Zipf>,
    /// Next index of the sequential walk.
    cursor: u64,
}

impl KeyChooser {
    /// `start` is where this thread's sequential walk begins.
    pub fn new(distribution: Distribution, keys: u64, theta: f64, start: u64) -> Result<Self> {
        let zipf = match distribution {
            Distribution::Zipfian | Distribution::Latest => Some(Zipf::new(keys, theta)?),
            _ => None,
        };
        Ok(KeyChooser {
            distribution,
            keys,
            zipf,
            cursor: start % keys.max(1),
        })
    }

    /// An index for a read or an update. `inserted` is how many keys exist (for latest).
    #[inline]
    pub fn pick(&mut self, rng: &mut Rng, inserted: u64) -> u64 {
        match (self.distribution, &self.zipf) {
            (Distribution::Sequential, _) => {
                let index = self.cursor;
                self.cursor = (self.cursor + 1) % self.keys;
                index
            }
            (Distribution::Zipfian, Some(z)) => mix64(z.rank(rng) ^ 0x5EED) % self.keys,
            (Distribution::Latest, Some(z)) => {
                let newest = inserted.clamp(1, self.keys);
                let back = z.rank(rng) % newest;
                newest - 1 - back
            }
            // Zipfian and latest always have their table (see `new`).
            (Distribution::Uniform | Distribution::Zipfian | Distribution::Latest, _) => {
                rng.below(self.keys)
            }
        }
    }

    /// The same chooser with its sequential walk starting at `start` (for another thread),
    /// sharing the zipfian table's parameters.
    pub fn for_thread(&self, start: u64) -> Self {
        KeyChooser {
            cursor: start % self.keys.max(1),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_decimal() {
        let mut k = Vec::new();
        make_key(42, 6, &mut k);
        assert_eq!(k, b"000042");
        make_key(0, 3, &mut k);
        assert_eq!(k, b"000");
        make_key(123_456, 16, &mut k);
        assert_eq!(k, b"0000000000123456");
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(10), 2);
    }

    #[test]
    fn permutation_visits_every_key_once() {
        for keys in [1u64, 2, 10, 97, 1000, 1024] {
            let mut seen = vec![false; keys as usize];
            for n in 0..keys {
                let i = permute(n, keys) as usize;
                assert!(!seen[i], "{i} twice for {keys} keys");
                seen[i] = true;
            }
        }
    }

    #[test]
    fn zipfian_is_skewed_and_uniform_is_not() {
        let keys = 10_000u64;
        let count_top = |distribution| {
            let mut chooser = KeyChooser::new(distribution, keys, 0.99, 0).unwrap();
            let mut rng = Rng::new(7);
            let mut counts = vec![0u32; keys as usize];
            for _ in 0..200_000 {
                let i = chooser.pick(&mut rng, keys);
                assert!(i < keys);
                counts[i as usize] += 1;
            }
            counts.sort_unstable_by(|a, b| b.cmp(a));
            counts[..10].iter().map(|&c| u64::from(c)).sum::<u64>()
        };
        let zipf_top = count_top(Distribution::Zipfian);
        let uniform_top = count_top(Distribution::Uniform);
        // With theta 0.99 over 10,000 keys the 10 hottest get about a quarter of the
        // picks; uniformly they get about 0.1% (plus noise).
        assert!(zipf_top > 40_000, "zipfian top-10 share {zipf_top}");
        assert!(uniform_top < 1_000, "uniform top-10 share {uniform_top}");
    }

    #[test]
    fn latest_prefers_the_newest_and_sequential_walks_in_order() {
        let mut latest = KeyChooser::new(Distribution::Latest, 1000, 0.99, 0).unwrap();
        let mut rng = Rng::new(1);
        let newest = (0..10_000)
            .filter(|_| latest.pick(&mut rng, 500) >= 490)
            .count();
        assert!(newest > 3_000, "{newest}");
        assert!((0..1000).all(|_| latest.pick(&mut rng, 500) < 500));
        let mut seq = KeyChooser::new(Distribution::Sequential, 5, 0.99, 3).unwrap();
        let walk: Vec<u64> = (0..6).map(|_| seq.pick(&mut rng, 5)).collect();
        assert_eq!(walk, [3, 4, 0, 1, 2, 3]);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Zipf::new(0, 0.9).is_err());
        assert!(Zipf::new(10, 1.0).is_err());
        assert!(Zipf::new(10, 0.0).is_err());
    }
}

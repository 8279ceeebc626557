//! `ringkv-bench compare --a URL --b URL [workload flags]`: the same workloads against two
//! targets, alternately (A B A B ...), so that both see the same machine conditions, and the
//! ratio A/B of each pair, with the median, min and max over the pairs.
//!
//! Reads need data: when the workloads read and do not start with a fill, each target is
//! filled once (fillrandom over the same key space) before the first pair. Each pair runs the
//! whole workload list on A, then on B; the ratio is of operations per second.

use crate::run::{run_all, LoadArgs, RunArgs, RunResult};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Flags of `ringkv-bench compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Target A (`ringkv://HOST:PORT` or `redis://HOST:PORT`); ratios are A over B.
    #[arg(long, value_name = "URL")]
    pub a: String,
    /// Target B.
    #[arg(long, value_name = "URL")]
    pub b: String,
    /// Number of A-B pairs to run (at least 1).
    #[arg(long, default_value_t = 3)]
    pub pairs: usize,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Also write every run and the ratios as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The ratios of one workload over all pairs.
#[derive(Debug, serde::Serialize)]
pub struct WorkloadRatio {
    pub workload: String,
    /// A's ops/s over B's, one per pair.
    pub ratios: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, serde::Serialize)]
struct CompareReport<'a> {
    a: &'a str,
    b: &'a str,
    /// `runs[pair] = (A's results, B's results)`.
    runs: Vec<(Vec<RunResult>, Vec<RunResult>)>,
    ratios: Vec<WorkloadRatio>,
}

/// Entry point of `ringkv-bench compare`.
pub fn run(args: CompareArgs) -> Result<()> {
    if args.pairs == 0 {
        bail!("--pairs must be at least 1");
    }
    let target = |url: &str, workload: Vec<String>| RunArgs {
        target: url.to_string(),
        load: LoadArgs {
            workload,
            ..args.load.clone()
        },
        json: None,
        report: None,
    };
    let reads = args.load.workload.iter().any(|w| w.starts_with("read"));
    let fills_first = args
        .load
        .workload
        .first()
        .is_some_and(|w| w.starts_with("fill"));
    if reads && !fills_first {
        for url in [&args.a, &args.b] {
            println!(
                "# filling {url} first (fillrandom, --keys {})",
                args.load.keys
            );
            run_all(&target(url, vec!["fillrandom".into()]))
                .with_context(|| format!("filling {url}"))?;
        }
    }
    let mut runs = Vec::new();
    for pair in 1..=args.pairs {
        println!("# pair {pair} of {}: A = {}", args.pairs, args.a);
        let a = run_all(&target(&args.a, args.load.workload.clone()))
            .with_context(|| format!("running against A ({})", args.a))?;
        println!("# pair {pair} of {}: B = {}", args.pairs, args.b);
        let b = run_all(&target(&args.b, args.load.workload.clone()))
            .with_context(|| format!("running against B ({})", args.b))?;
        for (ra, rb) in a.iter().zip(&b) {
            println!(
                "# pair {pair}: {:<11} A {:>11.0} ops/s  B {:>11.0} ops/s  A/B {:.2}",
                ra.workload,
                ra.ops_per_sec,
                rb.ops_per_sec,
                ratio(ra.ops_per_sec, rb.ops_per_sec)
            );
        }
        runs.push((a, b));
    }
    let ratios = summarize(&args.load.workload, &runs);
    println!(
        "workload     median A/B    min    max  (over {} pairs)",
        args.pairs
    );
    for r in &ratios {
        println!(
            "{:<11} {:>11.2} {:>6.2} {:>6.2}",
            r.workload, r.median, r.min, r.max
        );
    }
    let errors: u64 = runs
        .iter()
        .flat_map(|(a, b)| a.iter().chain(b))
        .map(|r| r.errors)
        .sum();
    if let Some(path) = &args.json {
        let report = CompareReport {
            a: &args.a,
            b: &args.b,
            runs,
            ratios,
        };
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if errors > 0 {
        bail!("the targets answered {errors} requests with errors");
    }
    Ok(())
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::INFINITY
    }
}

/// Per workload: the A/B ratio of each pair, and their median, min and max.
fn summarize(
    workloads: &[String],
    runs: &[(Vec<RunResult>, Vec<RunResult>)],
) -> Vec<WorkloadRatio> {
    workloads
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ratios: Vec<f64> = runs
                .iter()
                .filter_map(|(a, b)| Some(ratio(a.get(i)?.ops_per_sec, b.get(i)?.ops_per_sec)))
                .collect();
            let (median, min, max) = median_min_max(&ratios);
            WorkloadRatio {
                workload: name.clone(),
                ratios,
                median,
                min,
                max,
            }
        })
        .collect()
}

/// Median (mean of the middle two for an even count), min and max; NaN for no values.
fn median_min_max(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max_of_odd_even_and_empty() {
        assert_eq!(median_min_max(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(median_min_max(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert!(median_min_max(&[]).0.is_nan());
        assert_eq!(ratio(3.0, 0.0), f64::INFINITY);
    }
}

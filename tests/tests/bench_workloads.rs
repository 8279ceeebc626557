//! Every workload of `ringkv-bench run` against a real 2-shard `ringkv-server`: the fills,
//! readseq, overwrite, scan, YCSB a..f and a custom `--mix` run to completion without errors
//! and report the operation kinds they are made of; a `--duration` run lasts its duration
//! after its warmup; `--json` and `--report` write what they promise.

use ringkv_tests::server::{bench_binary, ServerOptions, ServerProcess};
use std::process::Command;

/// Runs `ringkv-bench run`; returns its JSON report, its SVG report and its stderr (the
/// live display).
fn bench(server: &ServerProcess, args: &[&str]) -> (serde_json::Value, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let svg = dir.path().join("report.svg");
    let output = Command::new(bench_binary())
        .args(["run", "--target", &format!("ringkv://{}", server.addr())])
        .arg("--json")
        .arg(&json)
        .arg("--report")
        .arg(&svg)
        .args(args)
        .output()
        .expect("running ringkv-bench");
    assert!(
        output.status.success(),
        "ringkv-bench {args:?} failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.diagnostics()
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (
        report,
        std::fs::read_to_string(&svg).unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn kinds(result: &serde_json::Value) -> Vec<String> {
    result["per_op"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["op"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_workload_runs_and_reports_its_operation_kinds() {
    let server = ServerProcess::start(ServerOptions::default());
    let workloads = "fillseq,readseq,overwrite,scan,ycsb-a,ycsb-b,ycsb-c,ycsb-d,ycsb-e,ycsb-f,mix";
    let (report, svg, _) = bench(
        &server,
        &[
            "--workload",
            workloads,
            "--mix",
            "get=50,put=30,scan=10,rmw=10",
            "--keys",
            "4000",
            "--ops",
            "3000",
            "--scan-length",
            "20",
            "--connections",
            "3",
            "--threads",
            "2",
        ],
    );
    let results = report.as_array().unwrap();
    let expected: &[(&str, &[&str])] = &[
        ("fillseq", &["put"]),
        ("readseq", &["get"]),
        ("overwrite", &["put"]),
        ("scan", &["scan"]),
        ("ycsb-a", &["get", "put"]),
        ("ycsb-b", &["get", "put"]),
        ("ycsb-c", &["get"]),
        ("ycsb-d", &["get", "insert"]),
        ("ycsb-e", &["insert", "scan"]),
        ("ycsb-f", &["get", "rmw"]),
        ("mix", &["get", "put", "scan", "rmw"]),
    ];
    assert_eq!(results.len(), expected.len());
    for (result, (name, ops)) in results.iter().zip(expected) {
        assert_eq!(result["workload"], *name);
        assert_eq!(result["ops"], 3000, "{name}: {result}");
        assert_eq!(result["errors"], 0, "{name}");
        assert_eq!(kinds(result), *ops, "{name}");
        assert!(result["ops_per_sec"].as_f64().unwrap() > 0.0);
    }
    // fillseq wrote keys 0..3000 in order; readseq reads 0..3000 back: all there.
    assert_eq!(results[1]["not_found"], 0);
    assert_eq!(results[0]["distribution"], "uniform");
    assert_eq!(results[4]["distribution"], "zipfian");
    assert_eq!(results[7]["distribution"], "latest");
    // One row of two charts per workload, each with its curve.
    assert!(svg.starts_with("<svg"));
    assert_eq!(
        svg.matches("<polyline").count(),
        2 * expected.len(),
        "{svg}"
    );
    for (name, _) in expected {
        assert!(
            svg.contains(&format!("{name}: ")),
            "{name} missing from the report"
        );
    }
}

#[test]
fn a_timed_run_lasts_its_duration_after_the_warmup() {
    let server = ServerProcess::start(ServerOptions::default());
    bench(&server, &["--workload", "fillrandom", "--keys", "20000"]);
    let started = std::time::Instant::now();
    let (report, _, live) = bench(
        &server,
        &[
            "--workload",
            "readrandom",
            "--keys",
            "20000",
            "--duration",
            "2",
            "--warmup",
            "1",
            "--distribution",
            "zipfian",
        ],
    );
    let elapsed = started.elapsed().as_secs_f64();
    let result = &report[0];
    let seconds = result["seconds"].as_f64().unwrap();
    assert!((1.8..3.5).contains(&seconds), "measured {seconds} s");
    assert!(
        elapsed >= 3.0,
        "the run took {elapsed} s, less than warmup + duration"
    );
    assert_eq!(result["not_found"], 0);
    assert_eq!(result["distribution"], "zipfian");
    // A second a line in the timeline, warmup included.
    // The live display printed a line a second (stderr is not a terminal here).
    let lines: Vec<&str> = live
        .lines()
        .filter(|l| l.contains(" readrandom "))
        .collect();
    assert!(lines.len() >= 2, "live lines: {live}");
    assert!(lines
        .iter()
        .all(|l| l.contains("ops/s") && l.contains("p99") && l.contains("errors 0")));
    let timeline = result["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 2, "{timeline:?}");
    assert!(timeline
        .iter()
        .all(|s| s["ops_per_sec"].as_f64().unwrap() > 0.0));
}

#[test]
fn the_embedded_target_runs_the_engine_in_process() {
    let run = |args: &[&str]| {
        Command::new(bench_binary())
            .args(["run", "--target", "embedded://"])
            .args(args)
            .output()
            .expect("running ringkv-bench")
    };
    let output = run(&[
        "--workload",
        "fillseq,readrandom",
        "--keys",
        "3000",
        "--pipeline",
        "8",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = stdout
        .lines()
        .find(|l| l.starts_with("readrandom"))
        .unwrap_or_else(|| panic!("no readrandom line: {stdout}"));
    // fillseq wrote every key of the space, so every random read finds its key.
    assert!(read.contains("found 3000, not found 0"), "{read}");
    let refused = run(&["--workload", "ycsb-a", "--keys", "100"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not available with embedded://"));
}

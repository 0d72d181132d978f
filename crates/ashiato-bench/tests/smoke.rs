//! CI smoke test of the harness: a tiny run (20k spans, no ClickHouse)
//! against the real `ashiato` binary must produce a well-formed report.
//! It asserts on shape and counts only, never on timings.

use std::path::PathBuf;
use std::process::Command;

/// Builds (a no-op when fresh) and returns the `ashiato` binary of the
/// profile this test was built with.
fn ashiato_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/smoke-<hash>
    let profile_dir = exe
        .ancestors()
        .nth(2)
        .expect("target/<profile>/deps")
        .to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "-p",
        "ashiato-cli",
        "--bin",
        "ashiato",
    ]);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    let status = build.status().expect("running cargo build");
    assert!(status.success(), "building ashiato failed");
    profile_dir.join("ashiato")
}

#[test]
fn tiny_run_writes_a_well_formed_report() {
    let binary = ashiato_binary();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_ashiato-bench"))
        .args(["--spans", "20000", "--lookups", "10", "--searches", "3"])
        .arg("--ashiato-bin")
        .arg(&binary)
        .arg("--json")
        .arg(&json)
        .arg("--work-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "harness failed:\n{stderr}");

    let table = String::from_utf8(output.stdout).unwrap();
    for row in [
        "ingest (acknowledged)",
        "bytes per span on disk",
        "trace by id p50",
        "attr search user.id p50",
        "startup, full store (sealed)",
    ] {
        assert!(table.contains(row), "no {row:?} row in:\n{table}");
    }

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["workload"]["spans"], 20000);
    assert!(report["clickhouse"].is_null());
    let ashiato = &report["ashiato"];
    for figure in [
        "ingest_spans_per_second",
        "server_cpu_seconds",
        "peak_rss_bytes",
        "idle_rss_full_bytes",
        "segment_bytes",
        "bytes_per_span",
        "startup_sealed_seconds",
        "ack_to_queryable_p50_ms",
    ] {
        let value = ashiato[figure].as_f64();
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{figure} should be a positive number: {ashiato}"
        );
    }
    let queries = &ashiato["queries"];
    // Every looked-up trace exists and is found whole.
    assert_eq!(queries["trace_by_id"]["runs"], 10);
    assert_eq!(queries["trace_by_id"]["mean_results"], 10.0);
    // The common route is on every trace's page; the user id of a sampled
    // trace finds at least that trace.
    assert_eq!(queries["route_search"]["mean_results"], 20.0);
    assert!(queries["user_search"]["mean_results"].as_f64().unwrap() >= 1.0);
    assert_eq!(queries["operation_search"]["runs"], 3);
}

//! Runs the UI's JavaScript unit tests (`tests/js/*.test.js`: tree
//! building, self time, critical path, trace comparison, formatting) with
//! `node --test`, so `cargo nextest` covers them. Needs node >= 20.

use std::path::Path;
use std::process::Command;

#[test]
fn test_javascript_unit_tests_pass_under_node() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec", "tests/js/"])
        .current_dir(crate_dir)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => panic!("node (>= 20) is needed for the UI's JavaScript tests: {error}"),
    };
    assert!(
        output.status.success(),
        "node --test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

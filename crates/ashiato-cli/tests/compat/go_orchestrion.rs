//! Compatibility test: go_orchestrion (see `docs/compatibility.md`).

#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;
#[allow(dead_code)]
mod common;

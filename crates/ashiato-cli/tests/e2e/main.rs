//! End-to-end tests: the real `ashiato` binary, driven by the real
//! OpenTelemetry Python SDK and by its own client commands.
//!
//! One test binary (not one per file) keeps link time down; nextest still
//! runs every test in its own process, each with its own server.

mod auth;
mod bad_input;
mod cli;
mod datadog;
mod durability;
mod errors;
mod errors_alerts;
mod notify;
mod sdk;
mod support;
mod tls;
mod ui;

//! The `ashiato` binary: `serve` runs the server; `demo`, `trace`, `traces`
//! and `logs` are clients of a running server.

mod access_settings;
mod client;
mod demo;
mod error_settings;
mod issues;
mod render;
mod serve;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ashiato: self-hosted, OpenTelemetry-native tracing and error tracking in one binary.
#[derive(Debug, Parser)]
#[command(name = "ashiato", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: OTLP ingest, embedded store, query API.
    Serve(Box<serve::ServeArgs>),
    /// Send realistic demo traffic (an order flow across several services) over OTLP.
    Demo(demo::DemoArgs),
    /// Print one trace as a span tree.
    Trace(client::TraceArgs),
    /// Search traces.
    Traces(client::TracesArgs),
    /// Search logs.
    Logs(client::LogsArgs),
    /// List error tracking issues.
    Issues(issues::IssuesArgs),
    /// Show one issue (stack, facets, samples), or resolve, ignore or reopen it.
    Issue(issues::IssueArgs),
    /// Create, revoke or list API tokens (the server reloads them on change).
    Token(token::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Demo(args) => demo::run(args),
        Command::Trace(args) => client::trace(args),
        Command::Traces(args) => client::traces(args),
        Command::Logs(args) => client::logs(args),
        Command::Issues(args) => issues::list(args),
        Command::Issue(args) => issues::issue(args),
        Command::Token(args) => token::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! `ashiato-bench`: the benchmark harness. Starts a release `ashiato serve`
//! (temp data dir, loopback port 0) as its own process, sends it the
//! deterministic Jaeger-v2-like workload over OTLP/HTTP and OTLP/gRPC from
//! several connections, measures ingest, memory, disk, startup and query
//! latencies, optionally does the same with a local ClickHouse, then prints
//! a table and writes the report as JSON.
//!
//! `cargo run --release -p ashiato-bench -- --spans 1000000 --clickhouse`
//! (see `docs/benchmarks.md` for the workload and the latest results).

mod clickhouse;
mod load;
mod otlp;
mod payloads;
mod procfs;
mod queries;
mod report;
mod server;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;

use crate::load::Protocols;
use crate::queries::{QueryPlan, QueryTarget};
use crate::report::{AshiatoFigures, ClickHouseFigures, Machine, Report, WorkloadInfo};
use crate::server::ServerProcess;
use crate::workload::{DEFAULT_ERROR_RATE, SPANS_PER_TRACE, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "ashiato-bench",
    about = "benchmark ashiato (and a local ClickHouse) on a Jaeger-like workload"
)]
struct Args {
    /// Spans to send (traces of 10 spans)
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Seed of the generated workload
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Concurrent OTLP connections
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Spans per OTLP export request
    #[arg(long, default_value_t = 1000)]
    batch_spans: u64,
    /// Which OTLP transports the connections use
    #[arg(long, value_enum, default_value_t = Protocols::Both)]
    protocols: Protocols,
    /// Also install (if missing), start and load a local ClickHouse
    #[arg(long)]
    clickhouse: bool,
    /// Spans per ClickHouse insert (JSONEachRow)
    #[arg(long, default_value_t = 100_000)]
    clickhouse_batch_spans: u64,
    /// Concurrent ClickHouse insert connections
    #[arg(long, default_value_t = 2)]
    clickhouse_connections: usize,
    /// Trace-by-id queries to time
    #[arg(long, default_value_t = 200)]
    lookups: usize,
    /// Queries to time per search kind
    #[arg(long, default_value_t = 20)]
    searches: usize,
    /// Where to write the JSON report
    #[arg(long, default_value = "target/bench/report.json")]
    json: PathBuf,
    /// The ashiato binary (default: build and use target/release/ashiato)
    #[arg(long)]
    ashiato_bin: Option<PathBuf>,
    /// Directory for data (default: a temporary directory, removed at the end)
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Share of spans that are errors (status ERROR with an exception event)
    #[arg(long, default_value_t = DEFAULT_ERROR_RATE, value_parser = parse_rate)]
    error_rate: f64,
    /// Extra argument for every `ashiato serve` start (repeatable), e.g.
    /// `--server-arg=--error-tracking=off` to measure what error tracking costs
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Generate and encode each batch while sending it, on the same cores
    /// as the server (default: every request body is made before the timed
    /// phase, so the load generator only sends bytes)
    #[arg(long)]
    live_generation: bool,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} is not a share between 0 and 1")),
    }
}

/// The generated spans cover the hour before the run started.
const WINDOW: Duration = Duration::from_secs(3600);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = server::locate_binary(args.ashiato_bin.clone())?;
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let window_ns = WINDOW.as_nanos() as u64;
    let workload = Workload {
        seed: args.seed,
        traces: (args.spans / SPANS_PER_TRACE as u64).max(1),
        window_start_ns: now.as_nanos() as u64 - window_ns,
        window_ns,
        error_rate: args.error_rate,
    };
    let plan = QueryPlan::new(&workload, args.lookups, args.searches);
    eprintln!(
        "workload: {} spans ({} traces), seed {}, error rate {}, server args {:?}",
        workload.spans(),
        workload.traces,
        workload.seed,
        workload.error_rate,
        args.server_args
    );
    let ashiato = bench_ashiato(&args, &binary, &work.join("ashiato"), workload, &plan)?;
    let clickhouse = if args.clickhouse {
        Some(bench_clickhouse(
            &args,
            &work.join("clickhouse"),
            workload,
            &plan,
        )?)
    } else {
        None
    };
    let report = Report {
        workload: WorkloadInfo {
            seed: workload.seed,
            spans: workload.spans(),
            traces: workload.traces,
            spans_per_trace: SPANS_PER_TRACE,
            connections: args.connections,
            protocols: format!("{:?}", args.protocols).to_lowercase(),
            batch_spans: args.batch_spans,
        },
        machine: machine(now.as_secs()),
        ashiato,
        clickhouse,
    };
    print!("{}", report::table(&report));
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("report written to {}", args.json.display());
    Ok(())
}

fn bench_ashiato(
    args: &Args,
    binary: &Path,
    data_dir: &Path,
    workload: Workload,
    plan: &QueryPlan,
) -> anyhow::Result<AshiatoFigures> {
    let server = ServerProcess::start(binary, data_dir, &args.server_args)?;
    // Let start-up allocations settle before calling the process idle.
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss_empty = procfs::rss_bytes(server.pid())?;

    eprintln!("ashiato: ingesting over {} connections", args.connections);
    let batch_traces = (args.batch_spans / SPANS_PER_TRACE as u64).max(1);
    let ingest = load::run(
        &server,
        workload,
        args.connections,
        batch_traces,
        args.protocols,
        !args.live_generation,
    )?;
    eprintln!(
        "ashiato: {} spans in {:.1?} ({:.0} spans/s)",
        ingest.spans,
        ingest.elapsed,
        ingest.spans as f64 / ingest.elapsed.as_secs_f64()
    );
    let ack_to_queryable = ack_to_queryable(&server, workload.seed)?;
    server.stop()?;
    let wal_bytes = dir_bytes(&data_dir.join("wal"));

    // Start-up replaying the whole WAL (nothing sealed yet at small sizes).
    let replayed = ServerProcess::start(binary, data_dir, &args.server_args)?;
    let startup_replay = replayed.startup;
    replayed.stop()?;

    let seal = seal(data_dir)?;
    let segment_bytes = dir_bytes(&data_dir.join("segments"));
    let data_dir_bytes = dir_bytes(data_dir);

    let server = ServerProcess::start(binary, data_dir, &args.server_args)?;
    let startup_sealed = server.startup;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss_full = procfs::rss_bytes(server.pid())?;
    eprintln!("ashiato: queries");
    let api = queries::Ashiato::new(&server.api);
    let results = queries::run_plan(&api, plan)?;
    server.stop()?;

    let seconds = ingest.elapsed.as_secs_f64();
    Ok(AshiatoFigures {
        ingest_spans_per_second: ingest.spans as f64 / seconds,
        ingest_seconds: seconds,
        overloaded_retries: ingest.overloaded_retries,
        server_cpu_seconds: ingest.server_cpu_seconds,
        server_cores_used: ingest.server_cpu_seconds / seconds,
        generator_cpu_seconds: ingest.generator_cpu_seconds,
        generator_cores_used: ingest.generator_cpu_seconds / seconds,
        peak_rss_bytes: ingest.server_peak_rss,
        idle_rss_empty_bytes: idle_rss_empty,
        idle_rss_full_bytes: idle_rss_full,
        wal_bytes_before_seal: wal_bytes,
        segment_bytes,
        data_dir_bytes,
        bytes_per_span: segment_bytes as f64 / ingest.spans.max(1) as f64,
        seal_seconds: seal.as_secs_f64(),
        startup_replay_seconds: startup_replay.as_secs_f64(),
        startup_sealed_seconds: startup_sealed.as_secs_f64(),
        ack_to_queryable_p50_ms: ack_to_queryable.0,
        ack_to_queryable_max_ms: ack_to_queryable.1,
        queries: results,
    })
}

/// Sends probe traces one at a time and polls trace-by-id after each
/// acknowledgement until all its spans are there; (p50, max) in ms.
fn ack_to_queryable(server: &ServerProcess, seed: u64) -> anyhow::Result<(f64, f64)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let probes = Workload {
        seed: seed ^ 0x0070_726f_6265,
        traces: 20,
        window_start_ns: now,
        window_ns: 1_000_000_000,
        error_rate: DEFAULT_ERROR_RATE,
    };
    let mut sender = otlp::Sender::http(&server.otlp_http);
    let api = queries::Ashiato::new(&server.api);
    let mut samples = Vec::new();
    for index in 0..probes.traces {
        let spans = probes.trace(index);
        sender.export(&otlp::encode(&otlp::export_request(&spans, index)))?;
        samples.push(api.wait_for_trace(&probes.trace_id(index), spans.len())?);
    }
    samples.sort();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Ok((ms(samples.get(samples.len() / 2)), ms(samples.last())))
}

/// Seals everything still in the WAL into segments (the server only seals
/// by size and age), with the store opened in this process.
fn seal(data_dir: &Path) -> anyhow::Result<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = ashiato_store::Store::open(ashiato_store::StoreConfig::new(data_dir))
            .context("opening the store to seal it")?;
        let began = Instant::now();
        let sealing = store.clone();
        tokio::task::spawn_blocking(move || sealing.seal_now())
            .await
            .context("sealing task")?
            .context("sealing")?;
        let took = began.elapsed();
        store.close().await.context("closing the store")?;
        Ok(took)
    })
}

fn bench_clickhouse(
    args: &Args,
    dir: &Path,
    workload: Workload,
    plan: &QueryPlan,
) -> anyhow::Result<ClickHouseFigures> {
    clickhouse::ensure_installed()?;
    let clickhouse = Arc::new(clickhouse::ClickHouse::start(dir)?);
    eprintln!("clickhouse {}: inserting", clickhouse.version);
    let batch_traces = (args.clickhouse_batch_spans / SPANS_PER_TRACE as u64).max(1);
    let insert = clickhouse::insert(
        &clickhouse,
        workload,
        args.clickhouse_connections,
        batch_traces,
        !args.live_generation,
    )?;
    eprintln!(
        "clickhouse: {} spans in {:.1?}",
        insert.spans, insert.elapsed
    );
    let table_bytes = clickhouse.table_bytes()?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = procfs::rss_bytes(clickhouse.pid())?;
    eprintln!("clickhouse: queries");
    let target: &dyn QueryTarget = clickhouse.as_ref();
    let results = queries::run_plan(target, plan)?;
    let seconds = insert.elapsed.as_secs_f64();
    Ok(ClickHouseFigures {
        version: clickhouse.version.clone(),
        insert_spans_per_second: insert.spans as f64 / seconds,
        insert_seconds: seconds,
        batch_spans: args.clickhouse_batch_spans,
        server_cpu_seconds: insert.server_cpu_seconds,
        generator_cpu_seconds: insert.generator_cpu_seconds,
        peak_rss_bytes: insert.server_peak_rss,
        idle_rss_bytes: idle_rss,
        table_bytes,
        bytes_per_span: table_bytes as f64 / insert.spans.max(1) as f64,
        queries: results,
    })
}

/// Total size of the regular files under a directory.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

fn machine(date_unix: u64) -> Machine {
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib * 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_bytes,
        kernel,
        commit,
        date_unix,
    }
}

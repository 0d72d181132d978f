//! The benchmark report: a serializable record of one run and the table
//! printed from it (ashiato, ClickHouse, ashiato ÷ ClickHouse).

use serde::Serialize;

use crate::queries::QueryResults;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: WorkloadInfo,
    pub machine: Machine,
    pub ashiato: AshiatoFigures,
    pub clickhouse: Option<ClickHouseFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadInfo {
    pub seed: u64,
    pub spans: u64,
    pub traces: u64,
    pub spans_per_trace: usize,
    pub connections: usize,
    pub protocols: String,
    pub batch_spans: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    pub commit: String,
    pub date_unix: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AshiatoFigures {
    pub ingest_spans_per_second: f64,
    pub ingest_seconds: f64,
    pub overloaded_retries: u64,
    pub server_cpu_seconds: f64,
    /// Server CPU seconds per wall second during ingest (2.0 = two cores).
    pub server_cores_used: f64,
    pub generator_cpu_seconds: f64,
    pub generator_cores_used: f64,
    pub peak_rss_bytes: u64,
    pub idle_rss_empty_bytes: u64,
    pub idle_rss_full_bytes: u64,
    pub wal_bytes_before_seal: u64,
    pub segment_bytes: u64,
    pub data_dir_bytes: u64,
    pub bytes_per_span: f64,
    pub seal_seconds: f64,
    pub startup_replay_seconds: f64,
    pub startup_sealed_seconds: f64,
    pub ack_to_queryable_p50_ms: f64,
    pub ack_to_queryable_max_ms: f64,
    pub queries: QueryResults,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClickHouseFigures {
    pub version: String,
    pub insert_spans_per_second: f64,
    pub insert_seconds: f64,
    pub batch_spans: u64,
    pub server_cpu_seconds: f64,
    pub generator_cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    pub idle_rss_bytes: u64,
    pub table_bytes: u64,
    pub bytes_per_span: f64,
    pub queries: QueryResults,
}

const MIB: f64 = 1024.0 * 1024.0;

/// One table row: a label, ashiato's value, ClickHouse's, and whether a
/// higher value is better (for the ratio's reading).
struct Line {
    label: &'static str,
    ashiato: f64,
    clickhouse: Option<f64>,
    unit: &'static str,
}

fn lines(report: &Report) -> Vec<Line> {
    let a = &report.ashiato;
    let c = report.clickhouse.as_ref();
    let line = |label, ashiato, clickhouse: Option<f64>, unit| Line {
        label,
        ashiato,
        clickhouse,
        unit,
    };
    vec![
        line(
            "ingest (acknowledged)",
            a.ingest_spans_per_second,
            c.map(|c| c.insert_spans_per_second),
            "spans/s",
        ),
        line(
            "server cpu during ingest",
            a.server_cpu_seconds,
            c.map(|c| c.server_cpu_seconds),
            "cpu s",
        ),
        line(
            "generator cpu",
            a.generator_cpu_seconds,
            c.map(|c| c.generator_cpu_seconds),
            "cpu s",
        ),
        line(
            "peak rss",
            a.peak_rss_bytes as f64 / MIB,
            c.map(|c| c.peak_rss_bytes as f64 / MIB),
            "MiB",
        ),
        line(
            "idle rss (full store)",
            a.idle_rss_full_bytes as f64 / MIB,
            c.map(|c| c.idle_rss_bytes as f64 / MIB),
            "MiB",
        ),
        line(
            "bytes per span on disk",
            a.bytes_per_span,
            c.map(|c| c.bytes_per_span),
            "B",
        ),
        line(
            "trace by id p50",
            a.queries.trace_by_id.p50_ms,
            c.map(|c| c.queries.trace_by_id.p50_ms),
            "ms",
        ),
        line(
            "trace by id p99",
            a.queries.trace_by_id.p99_ms,
            c.map(|c| c.queries.trace_by_id.p99_ms),
            "ms",
        ),
        line(
            "service+op+duration search p50",
            a.queries.operation_search.p50_ms,
            c.map(|c| c.queries.operation_search.p50_ms),
            "ms",
        ),
        line(
            "attr search http.route p50",
            a.queries.route_search.p50_ms,
            c.map(|c| c.queries.route_search.p50_ms),
            "ms",
        ),
        line(
            "attr search user.id p50",
            a.queries.user_search.p50_ms,
            c.map(|c| c.queries.user_search.p50_ms),
            "ms",
        ),
        line("ack → queryable p50", a.ack_to_queryable_p50_ms, None, "ms"),
        line(
            "startup, full store (sealed)",
            a.startup_sealed_seconds * 1000.0,
            None,
            "ms",
        ),
        line(
            "startup, full store (wal replay)",
            a.startup_replay_seconds * 1000.0,
            None,
            "ms",
        ),
        line(
            "idle rss (empty store)",
            a.idle_rss_empty_bytes as f64 / MIB,
            None,
            "MiB",
        ),
    ]
}

fn number(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The table, as Markdown (readable in a terminal, pasteable into docs).
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("| metric | unit | ashiato | clickhouse | ashiato ÷ clickhouse |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: |\n");
    for line in lines(report) {
        let (clickhouse, ratio) = match line.clickhouse {
            Some(value) if value > 0.0 => (number(value), format!("{:.2}", line.ashiato / value)),
            Some(value) => (number(value), "–".to_owned()),
            None => ("–".to_owned(), "–".to_owned()),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            line.label,
            line.unit,
            number(line.ashiato),
            clickhouse,
            ratio
        ));
    }
    out
}

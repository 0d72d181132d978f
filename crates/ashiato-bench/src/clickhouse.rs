//! The ClickHouse side of the comparison: installs Debian's
//! `clickhouse-server` when missing, starts it on loopback with its own temp
//! dir and config, creates a Jaeger-v2-like wide-spans table, inserts the
//! same generated spans as JSONEachRow batches over its HTTP interface, and
//! answers the same queries.
//!
//! Schema notes (Debian bookworm ships 18.16): no `DateTime64`, so the
//! partition/sort time is a `DateTime` next to the exact `start_ns`;
//! `LowCardinality` needs `allow_experimental_low_cardinality_type`;
//! attributes are `Nested` key/value arrays split by type as in Jaeger v2.
//! ClickHouse does not fsync inserts by default; ashiato does.

use std::collections::HashSet;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::payloads::{MakePayload, Payload, Payloads};
use crate::procfs;
use crate::queries::{AttributeSearch, OperationSearch, QueryTarget, SEARCH_LIMIT};
use crate::workload::{self, GenSpan, Value, Workload};

const SERVER_BINARY: &str = "/usr/sbin/clickhouse-server";

const SCHEMA: &str = "CREATE TABLE spans (
    timestamp DateTime,
    start_ns UInt64,
    duration_ns UInt64,
    trace_id String,
    span_id String,
    parent_span_id String,
    trace_state String,
    service_name LowCardinality(String),
    name LowCardinality(String),
    kind LowCardinality(String),
    status_code LowCardinality(String),
    status_message String,
    str_attributes Nested(key LowCardinality(String), value String),
    int_attributes Nested(key LowCardinality(String), value Int64),
    events Nested(name LowCardinality(String), timestamp UInt64, attributes String),
    resource_attributes Nested(key LowCardinality(String), value String),
    scope_name LowCardinality(String),
    scope_version LowCardinality(String)
) ENGINE = MergeTree()
PARTITION BY toDate(timestamp)
ORDER BY (service_name, name, timestamp)";

/// Installs the server package when it is missing (Debian, as root).
pub fn ensure_installed() -> anyhow::Result<()> {
    if Path::new(SERVER_BINARY).exists() {
        return Ok(());
    }
    eprintln!("installing clickhouse-server with apt-get");
    let status = Command::new("sh")
        .args([
            "-c",
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y clickhouse-server",
        ])
        .status()
        .context("running apt-get")?;
    if !status.success() || !Path::new(SERVER_BINARY).exists() {
        bail!("could not install clickhouse-server (needs Debian and root)");
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

pub struct ClickHouse {
    child: Child,
    dir: PathBuf,
    url: String,
    agent: ureq::Agent,
    pub version: String,
}

impl ClickHouse {
    pub fn start(dir: &Path) -> anyhow::Result<ClickHouse> {
        fs::create_dir_all(dir)?;
        let http_port = free_port()?;
        let tcp_port = free_port()?;
        let root = dir.display();
        let config = format!(
            "<yandex>
  <logger><level>warning</level><log>{root}/server.log</log><errorlog>{root}/error.log</errorlog></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{root}/data/</path>
  <tmp_path>{root}/tmp/</tmp_path>
  <user_files_path>{root}/user_files/</user_files_path>
  <format_schema_path>{root}/format_schemas/</format_schema_path>
  <users_config>{root}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>1073741824</mark_cache_size>
</yandex>
"
        );
        let users = "<yandex>
  <profiles><default><allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
";
        fs::write(dir.join("config.xml"), config)?;
        fs::write(dir.join("users.xml"), users)?;
        let child = Command::new(SERVER_BINARY)
            .arg(format!("--config-file={root}/config.xml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting clickhouse-server")?;
        let mut clickhouse = ClickHouse {
            child,
            dir: dir.to_owned(),
            url: format!("http://127.0.0.1:{http_port}/"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(600)))
                .build()
                .into(),
            version: String::new(),
        };
        let began = Instant::now();
        loop {
            match clickhouse.query("SELECT version()") {
                Ok(version) => {
                    clickhouse.version = version.trim().to_owned();
                    break;
                }
                Err(error) if began.elapsed() > Duration::from_secs(60) => {
                    return Err(error.context("clickhouse-server did not answer within 60 s"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        clickhouse.query(SCHEMA)?;
        Ok(clickhouse)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs one statement; the body of the answer.
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        self.post(&self.url, sql.as_bytes())
    }

    fn post(&self, url: &str, body: &[u8]) -> anyhow::Result<String> {
        let mut response = self
            .agent
            .post(url)
            .send(body)
            .context("posting to clickhouse")?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .context("reading clickhouse answer")?;
        if status != 200 {
            bail!("clickhouse answered {status}: {}", text.trim());
        }
        Ok(text)
    }

    /// Bytes of the table's active parts, after merging them.
    pub fn table_bytes(&self) -> anyhow::Result<u64> {
        // Merge what background merges have not yet, as a long-running
        // server would have by the time data is old enough to matter.
        self.query("OPTIMIZE TABLE spans FINAL")?;
        let bytes =
            self.query("SELECT sum(bytes) FROM system.parts WHERE table = 'spans' AND active")?;
        bytes.trim().parse().context("parsing system.parts bytes")
    }

    fn select_traces(&self, sql: &str) -> anyhow::Result<(usize, usize)> {
        let body = self.query(&format!("{sql} FORMAT JSONEachRow"))?;
        let mut traces = HashSet::new();
        let mut spans = 0;
        for line in body.lines().filter(|line| !line.is_empty()) {
            let row: serde_json::Value = serde_json::from_str(line).context("clickhouse row")?;
            traces.insert(row["trace_id"].as_str().unwrap_or_default().to_owned());
            spans += 1;
        }
        Ok((traces.len(), spans))
    }

    fn traces_matching(
        &self,
        condition: &str,
        start_ns: u64,
        end_ns: u64,
    ) -> anyhow::Result<usize> {
        // Jaeger's two steps: the newest matching trace ids, then their
        // spans; traces are short, so their spans start within a minute of
        // the searched range.
        let (start, end) = (start_ns / 1_000_000_000, end_ns / 1_000_000_000);
        let sql = format!(
            "SELECT * FROM spans WHERE timestamp BETWEEN toDateTime({}) AND toDateTime({}) AND trace_id IN (
                SELECT trace_id FROM spans
                WHERE timestamp BETWEEN toDateTime({start}) AND toDateTime({end}) AND start_ns BETWEEN {start_ns} AND {end_ns} AND {condition}
                GROUP BY trace_id ORDER BY max(start_ns) DESC LIMIT {SEARCH_LIMIT})",
            start.saturating_sub(60),
            end + 60
        );
        Ok(self.select_traces(&sql)?.0)
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl QueryTarget for ClickHouse {
    fn trace_by_id(&self, trace_id: &[u8; 16]) -> anyhow::Result<usize> {
        let sql = format!(
            "SELECT * FROM spans WHERE trace_id = {}",
            quote(&workload::hex(trace_id))
        );
        Ok(self.select_traces(&sql)?.1)
    }

    fn operation_search(&self, search: &OperationSearch) -> anyhow::Result<usize> {
        let condition = format!(
            "service_name = {} AND name = {} AND duration_ns >= {}",
            quote(&search.service),
            quote(&search.operation),
            search.min_duration_ns
        );
        self.traces_matching(&condition, search.start_ns, search.end_ns)
    }

    fn attribute_search(&self, search: &AttributeSearch) -> anyhow::Result<usize> {
        let condition = match search.value.parse::<i64>() {
            Ok(number) => format!(
                "arrayExists((k, v) -> k = {} AND v = {number}, int_attributes.key, int_attributes.value)",
                quote(search.key)
            ),
            Err(_) => format!(
                "arrayExists((k, v) -> k = {} AND v = {}, str_attributes.key, str_attributes.value)",
                quote(search.key),
                quote(&search.value)
            ),
        };
        self.traces_matching(&condition, search.start_ns, search.end_ns)
    }
}

#[derive(Serialize)]
struct Row<'a> {
    timestamp: u64,
    start_ns: u64,
    duration_ns: u64,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    trace_state: &'a str,
    service_name: &'a str,
    name: &'a str,
    kind: &'a str,
    status_code: &'a str,
    status_message: &'a str,
    #[serde(rename = "str_attributes.key")]
    str_keys: Vec<&'a str>,
    #[serde(rename = "str_attributes.value")]
    str_values: Vec<&'a str>,
    #[serde(rename = "int_attributes.key")]
    int_keys: Vec<&'a str>,
    #[serde(rename = "int_attributes.value")]
    int_values: Vec<i64>,
    #[serde(rename = "events.name")]
    event_names: Vec<&'a str>,
    #[serde(rename = "events.timestamp")]
    event_times: Vec<u64>,
    #[serde(rename = "events.attributes")]
    event_attributes: Vec<String>,
    #[serde(rename = "resource_attributes.key")]
    resource_keys: Vec<&'static str>,
    #[serde(rename = "resource_attributes.value")]
    resource_values: Vec<String>,
    scope_name: &'a str,
    scope_version: &'a str,
}

fn row_json(span: &GenSpan, host: u64, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut row = Row {
        timestamp: span.start_ns / 1_000_000_000,
        start_ns: span.start_ns,
        duration_ns: span.duration_ns,
        trace_id: workload::hex(&span.trace_id),
        span_id: workload::hex(&span.span_id),
        parent_span_id: span
            .parent_span_id
            .map(|id| workload::hex(&id))
            .unwrap_or_default(),
        trace_state: "",
        service_name: span.service_name(),
        name: &span.name,
        kind: match span.kind {
            workload::SpanKind::Server => "server",
            workload::SpanKind::Client => "client",
            workload::SpanKind::Producer => "producer",
        },
        status_code: if span.error.is_some() {
            "Error"
        } else {
            "Unset"
        },
        status_message: span.error.as_ref().map_or("", |e| e.message),
        str_keys: Vec::new(),
        str_values: Vec::new(),
        int_keys: Vec::new(),
        int_values: Vec::new(),
        event_names: Vec::new(),
        event_times: Vec::new(),
        event_attributes: Vec::new(),
        resource_keys: Vec::new(),
        resource_values: Vec::new(),
        scope_name: "ashiato-bench",
        scope_version: "1.0.0",
    };
    for (key, value) in &span.attributes {
        match value {
            Value::Str(text) => {
                row.str_keys.push(key);
                row.str_values.push(text);
            }
            Value::Int(number) => {
                row.int_keys.push(key);
                row.int_values.push(*number);
            }
        }
    }
    if let Some(exception) = &span.error {
        row.event_names.push("exception");
        row.event_times.push(exception.time_ns);
        row.event_attributes
            .push(serde_json::to_string(&serde_json::json!({
                "exception.type": exception.kind,
                "exception.message": exception.message,
                "exception.stacktrace": exception.stacktrace,
            }))?);
    }
    for (key, value) in workload::resource(span.service, host) {
        row.resource_keys.push(key);
        row.resource_values.push(value);
    }
    serde_json::to_writer(&mut *out, &row)?;
    out.push(b'\n');
    Ok(())
}

pub struct InsertResult {
    pub spans: u64,
    pub elapsed: Duration,
    pub server_cpu_seconds: f64,
    pub generator_cpu_seconds: f64,
    pub server_peak_rss: u64,
}

/// Inserts the workload as JSONEachRow batches of `batch_traces` traces over
/// `connections` concurrent HTTP connections.
pub fn insert(
    clickhouse: &Arc<ClickHouse>,
    workload: Workload,
    connections: usize,
    batch_traces: u64,
    pregenerate: bool,
) -> anyhow::Result<InsertResult> {
    let connections = connections.max(1);
    let batch_traces = batch_traces.max(1);
    let batches = workload.traces.div_ceil(batch_traces);
    let make: MakePayload = Arc::new(move |batch| {
        let spans = workload.batch(batch * batch_traces, batch_traces);
        let mut body = Vec::new();
        for span in &spans {
            row_json(span, batch, &mut body)?;
        }
        Ok(Payload {
            body: body.into(),
            spans: spans.len() as u64,
        })
    });
    let payloads = Payloads::prepare(batches, make, pregenerate)?;
    let inserted = Arc::new(AtomicU64::new(0));
    // batches in order across connections, as for ashiato (see `load`)
    let next_batch = Arc::new(AtomicU64::new(0));
    let server_cpu_before = procfs::cpu_seconds(clickhouse.pid())?;
    let own_cpu_before = procfs::cpu_seconds(std::process::id())?;
    let url = format!(
        "{}?query=INSERT%20INTO%20spans%20FORMAT%20JSONEachRow",
        clickhouse.url
    );
    let began = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let clickhouse = Arc::clone(clickhouse);
        let inserted = Arc::clone(&inserted);
        let url = url.clone();
        let next_batch = Arc::clone(&next_batch);
        let payloads = payloads.clone();
        workers.push(std::thread::spawn(move || -> anyhow::Result<()> {
            loop {
                let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                if batch >= payloads.batches() {
                    break;
                }
                let payload = payloads.get(batch)?;
                clickhouse.post(&url, &payload.body)?;
                inserted.fetch_add(payload.spans, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("an insert thread panicked"))??;
    }
    let elapsed = began.elapsed();
    Ok(InsertResult {
        spans: inserted.load(Ordering::Relaxed),
        elapsed,
        server_cpu_seconds: procfs::cpu_seconds(clickhouse.pid())? - server_cpu_before,
        generator_cpu_seconds: procfs::cpu_seconds(std::process::id())? - own_cpu_before,
        server_peak_rss: procfs::peak_rss_bytes(clickhouse.pid())?,
    })
}

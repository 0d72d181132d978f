//! The query workload, identical for ashiato and ClickHouse: trace by id
//! for random existing traces, a service + operation + min duration + time
//! range search, and two attribute searches (a common `http.route`, a rare
//! `user.id`). Chosen from the seed, so two runs ask the same questions.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::workload::{self, Rng, Value, Workload};

/// Search results asked for, as the UI's first page.
pub const SEARCH_LIMIT: usize = 20;

pub struct OperationSearch {
    pub service: String,
    pub operation: String,
    pub min_duration_ns: u64,
    pub start_ns: u64,
    pub end_ns: u64,
}

pub struct AttributeSearch {
    pub key: &'static str,
    pub value: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

pub struct QueryPlan {
    pub trace_ids: Vec<[u8; 16]>,
    pub operation_searches: Vec<OperationSearch>,
    pub route_searches: Vec<AttributeSearch>,
    pub user_searches: Vec<AttributeSearch>,
}

impl QueryPlan {
    pub fn new(workload: &Workload, lookups: usize, searches: usize) -> QueryPlan {
        let mut rng = Rng::new(workload.seed ^ 0x7175_6572_7921);
        let end = workload.window_start_ns + workload.window_ns;
        let trace_ids = (0..lookups)
            .map(|_| workload.trace_id(rng.below(workload.traces)))
            .collect();
        // A sixth of the window (10 minutes of the default hour).
        let range = workload.window_ns / 6;
        let operation_searches = (0..searches)
            .map(|_| {
                let service = rng.below(workload::SERVICES.len() as u64) as usize;
                let operation = rng.below(10) as usize;
                let start_ns = workload.window_start_ns + rng.below(workload.window_ns - range);
                OperationSearch {
                    service: workload::SERVICES[service].to_owned(),
                    operation: Workload::operation_name(service, operation),
                    min_duration_ns: 20_000_000,
                    start_ns,
                    end_ns: start_ns + range,
                }
            })
            .collect();
        let route_searches = (0..searches)
            .map(|_| {
                let service = rng.below(workload::SERVICES.len() as u64) as usize;
                AttributeSearch {
                    key: "http.route",
                    value: Workload::route(service, 5),
                    start_ns: workload.window_start_ns,
                    end_ns: end,
                }
            })
            .collect();
        let user_searches = (0..searches)
            .map(|_| {
                let trace = workload.trace(rng.below(workload.traces));
                let user = trace[0]
                    .attributes
                    .iter()
                    .find_map(|(key, value)| match value {
                        Value::Int(user) if *key == "user.id" => Some(*user),
                        _ => None,
                    });
                AttributeSearch {
                    key: "user.id",
                    value: user.unwrap_or(1).to_string(),
                    start_ns: workload.window_start_ns,
                    end_ns: end,
                }
            })
            .collect();
        QueryPlan {
            trace_ids,
            operation_searches,
            route_searches,
            user_searches,
        }
    }
}

/// Latency percentiles of one query kind, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Mean number of results (spans for lookups, traces for searches),
    /// so an empty answer is visible.
    pub mean_results: f64,
}

impl Latency {
    pub fn from_samples(mut samples: Vec<(Duration, usize)>) -> Latency {
        samples.sort_by_key(|(elapsed, _)| *elapsed);
        let runs = samples.len();
        let at = |quantile: f64| -> f64 {
            if runs == 0 {
                return 0.0;
            }
            let index = ((runs as f64 - 1.0) * quantile).round() as usize;
            samples[index.min(runs - 1)].0.as_secs_f64() * 1000.0
        };
        let results: usize = samples.iter().map(|(_, found)| found).sum();
        Latency {
            runs,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            mean_results: results as f64 / runs.max(1) as f64,
        }
    }
}

/// A system the query plan can run against.
pub trait QueryTarget {
    /// Number of spans of the trace.
    fn trace_by_id(&self, trace_id: &[u8; 16]) -> anyhow::Result<usize>;
    /// Number of traces found (at most [`SEARCH_LIMIT`]), with their spans.
    fn operation_search(&self, search: &OperationSearch) -> anyhow::Result<usize>;
    fn attribute_search(&self, search: &AttributeSearch) -> anyhow::Result<usize>;
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryResults {
    pub trace_by_id: Latency,
    pub operation_search: Latency,
    pub route_search: Latency,
    pub user_search: Latency,
}

fn timed<T>(
    items: &[T],
    mut run: impl FnMut(&T) -> anyhow::Result<usize>,
) -> anyhow::Result<Latency> {
    let mut samples = Vec::with_capacity(items.len());
    for item in items {
        let began = Instant::now();
        let found = run(item)?;
        samples.push((began.elapsed(), found));
    }
    Ok(Latency::from_samples(samples))
}

pub fn run_plan(target: &dyn QueryTarget, plan: &QueryPlan) -> anyhow::Result<QueryResults> {
    // One unmeasured pass of each kind warms caches the way a live server's are.
    if let Some(id) = plan.trace_ids.first() {
        target.trace_by_id(id)?;
    }
    Ok(QueryResults {
        trace_by_id: timed(&plan.trace_ids, |id| target.trace_by_id(id))?,
        operation_search: timed(&plan.operation_searches, |s| target.operation_search(s))?,
        route_search: timed(&plan.route_searches, |s| target.attribute_search(s))?,
        user_search: timed(&plan.user_searches, |s| target.attribute_search(s))?,
    })
}

/// ashiato's JSON API.
pub struct Ashiato {
    agent: ureq::Agent,
    base: String,
}

impl Ashiato {
    pub fn new(api_base: &str) -> Ashiato {
        Ashiato {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(300)))
                .build()
                .into(),
            base: format!("{api_base}/api/v1"),
        }
    }

    fn get(&self, path_and_query: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let url = format!("{}{path_and_query}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .with_context(|| format!("reading {url}"))?;
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        Ok((status, json))
    }

    fn search(&self, query: &str) -> anyhow::Result<usize> {
        let (status, json) = self.get(&format!("/traces?{query}&limit={SEARCH_LIMIT}"))?;
        if status != 200 {
            bail!("trace search answered {status}: {json}");
        }
        Ok(json["traces"].as_array().map_or(0, Vec::len))
    }

    /// Polls trace by id until it has `spans` spans; the time it took.
    pub fn wait_for_trace(&self, trace_id: &[u8; 16], spans: usize) -> anyhow::Result<Duration> {
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(60) {
            if self.trace_by_id(trace_id)? >= spans {
                return Ok(began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!("trace {} never became queryable", workload::hex(trace_id))
    }
}

/// Percent-encodes a query-string value (`/`, `:`, spaces, …).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl QueryTarget for Ashiato {
    fn trace_by_id(&self, trace_id: &[u8; 16]) -> anyhow::Result<usize> {
        let (status, json) = self.get(&format!("/traces/{}", workload::hex(trace_id)))?;
        match status {
            200 => Ok(json["spans"].as_array().map_or(0, Vec::len)),
            404 => Ok(0),
            other => bail!("trace by id answered {other}: {json}"),
        }
    }

    fn operation_search(&self, search: &OperationSearch) -> anyhow::Result<usize> {
        self.search(&format!(
            "service={}&operation={}&min_duration={}ms&start={}&end={}",
            encode(&search.service),
            encode(&search.operation),
            search.min_duration_ns / 1_000_000,
            search.start_ns,
            search.end_ns
        ))
    }

    fn attribute_search(&self, search: &AttributeSearch) -> anyhow::Result<usize> {
        self.search(&format!(
            "attr={}&start={}&end={}",
            encode(&format!("{}:{}", search.key, search.value)),
            search.start_ns,
            search.end_ns
        ))
    }
}

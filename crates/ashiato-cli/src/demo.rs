//! `ashiato demo`: sends realistic traffic (an order flow across four
//! services, a batch job, and an export job that logs structured errors) to
//! an OTLP/HTTP endpoint as protobuf, the same path a real SDK takes, then
//! prints commands to look at what was sent. Recurring errors (failed
//! payments, batch timeouts, export upload failures) become issues.

mod export_job;
mod traffic;

use std::thread;
use std::time::Duration;

use ashiato_model::parse_duration_ns;
use prost::Message;

use crate::client::http::{agent, normalise_base, status_error};
use crate::render::timefmt::now_unix_nanos;
use traffic::{Order, Rng};

/// Default query API address; examples mention `--server` only when the
/// user picked another one.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8800";

/// A batch-job run is logged every this many orders.
const BATCH_JOB_EVERY: usize = 10;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// OTLP/HTTP endpoint of the ashiato server (its otlp-http listener)
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub endpoint: String,
    /// Number of order traces to send (per round with --continuous)
    #[arg(long, default_value_t = 30)]
    pub traces: usize,
    /// Pause between two orders, e.g. 100ms, 0s
    #[arg(long, default_value = "100ms", value_parser = parse_duration_ns)]
    pub interval: u64,
    /// Seed of the random generator, for a reproducible run
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep sending rounds of orders until interrupted
    #[arg(long)]
    pub continuous: bool,
    /// Query API address used in the example commands printed at the end
    #[arg(long, env = "ASHIATO_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
}

/// Counts of what a run sent, for the summary.
#[derive(Debug, Default)]
struct Sent {
    traces: usize,
    spans: usize,
    logs: usize,
    failed_example: Option<String>,
    ok_example: Option<String>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let sender = Sender::new(&args.endpoint);
    let mut rng = Rng::new(args.seed.unwrap_or_else(now_unix_nanos));
    anyhow::ensure!(args.traces > 0, "--traces must be at least 1");
    let mut sent = Sent::default();
    send_round(&sender, &mut rng, &args, &mut sent)?;
    // In continuous mode the examples come after the first round, so there
    // is something to look at while traffic keeps flowing.
    print_summary(&sent, &sender.base, &args.server);
    if !args.continuous {
        return Ok(());
    }
    loop {
        send_round(&sender, &mut rng, &args, &mut sent)?;
        eprintln!("sent {} traces so far; interrupt to stop", sent.traces);
    }
}

fn send_round(
    sender: &Sender,
    rng: &mut Rng,
    args: &DemoArgs,
    sent: &mut Sent,
) -> anyhow::Result<()> {
    let failures = traffic::payment_failures(rng, args.traces);
    for (index, fails) in failures.into_iter().enumerate() {
        // pause between any two orders of the run, across rounds too
        if sent.traces > 0 && args.interval > 0 {
            thread::sleep(Duration::from_nanos(args.interval));
        }
        let now = now_unix_nanos();
        let order = traffic::order(rng, now, fails);
        let mut logs = order.telemetry.logs.clone();
        if index % BATCH_JOB_EVERY == 0 {
            logs.extend(traffic::batch_job_logs(rng, now, index == 0));
            logs.extend(export_job::export_job_logs(rng, now, index == 0));
        }
        sender.send_traces(&traffic::trace_request(order.telemetry.spans.clone()))?;
        sender.send_logs(&traffic::logs_request(logs.clone()))?;
        record(sent, &order, logs.len());
    }
    Ok(())
}

fn record(sent: &mut Sent, order: &Order, log_count: usize) {
    sent.traces += 1;
    sent.spans += order.telemetry.spans.len();
    sent.logs += log_count;
    let example = if order.failed {
        &mut sent.failed_example
    } else {
        &mut sent.ok_example
    };
    example.get_or_insert_with(|| order.trace_id_hex.clone());
}

fn print_summary(sent: &Sent, endpoint: &str, server: &str) {
    println!(
        "sent {} traces ({} spans) and {} log records to {endpoint}",
        sent.traces, sent.spans, sent.logs
    );
    let flag = if normalise_base(server) == DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {}", normalise_base(server))
    };
    println!("try:");
    if let Some(id) = &sent.failed_example {
        println!("  ashiato trace {id}{flag}    # a failed payment: 残高不足");
    }
    if let Some(id) = &sent.ok_example {
        println!("  ashiato trace {id}{flag}    # a successful order");
    }
    println!("  ashiato traces --service payments --error{flag}");
    println!("  ashiato logs --service batch --severity error{flag}");
    println!("  ashiato issues{flag}    # recurring errors, grouped (after ~10s of settling)");
}

/// POSTs protobuf export requests to `/v1/traces` and `/v1/logs`.
struct Sender {
    base: String,
    agent: ureq::Agent,
}

impl Sender {
    fn new(endpoint: &str) -> Sender {
        Sender {
            base: normalise_base(endpoint),
            agent: agent(),
        }
    }

    fn send_traces(&self, request: &impl Message) -> anyhow::Result<()> {
        self.post("/v1/traces", request.encode_to_vec())
    }

    fn send_logs(&self, request: &impl Message) -> anyhow::Result<()> {
        self.post("/v1/logs", request.encode_to_vec())
    }

    fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/x-protobuf")
            .send(&body[..])
            .map_err(|error| unreachable_endpoint(&self.base, &error))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let reply = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        let error = status_error(status, &rpc_status_message(&reply));
        if status == 404 {
            // The usual cause: --endpoint names the API or gRPC listener.
            return Err(error.context(format!(
                "sending to {url} failed: is {} the OTLP/HTTP listener (default port 4318)?",
                self.base
            )));
        }
        Err(error.context(format!("sending to {url} failed")))
    }
}

fn unreachable_endpoint(base: &str, error: &ureq::Error) -> anyhow::Error {
    let message = crate::client::http::unreachable_error(base, error).to_string();
    anyhow::anyhow!("{} (the demo sends OTLP/HTTP, default port 4318)", message)
}

/// `google.rpc.Status`, the body of an OTLP/HTTP protobuf error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The error message of an OTLP error answer, whichever encoding the server
/// used: protobuf `google.rpc.Status`, else the text as is.
fn rpc_status_message(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    if text.trim_start().starts_with('{') {
        return text.into_owned();
    }
    match RpcStatus::decode(reply) {
        Ok(status) if !status.message.is_empty() => status.message,
        _ => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_rpc_status_message_forms() {
        let encoded = RpcStatus {
            code: 3,
            message: "bad protobuf".into(),
        }
        .encode_to_vec();
        assert_eq!(rpc_status_message(&encoded), "bad protobuf");
        assert_eq!(rpc_status_message(br#"{"error":"x"}"#), r#"{"error":"x"}"#);
        assert_eq!(rpc_status_message(b""), "");
    }
}

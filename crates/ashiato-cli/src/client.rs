//! The terminal commands `ashiato trace`, `traces` and `logs`: turn flags
//! into a query API request, fetch it, and print it through `render`.
//!
//! Everything that can fail here is the user's input or the server's answer,
//! so every failure becomes an error message, never a panic.

pub(crate) mod http;

use std::io::Write;

use ashiato_model::{TraceId, parse_duration_ns};
use serde_json::Value;

use crate::render::{self, TraceRenderOptions, timefmt::now_unix_nanos};
use http::Api;

/// Where the query API listens; shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArg {
    /// ashiato server (its UI/API listener) to ask
    #[arg(long, env = "ASHIATO_SERVER", default_value = "http://127.0.0.1:8800")]
    pub server: String,
    /// API token (scope read; admin to change issues), when the server
    /// requires one
    #[arg(long, env = "ASHIATO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ServerArg {
    /// The API client for this server and token.
    pub fn api(&self) -> Api {
        Api::new(&self.server).with_token(self.token.as_deref())
    }
}

#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// Trace id: 32 hex digits, or 16 for a 64-bit id
    pub trace_id: String,
    /// Show every attribute, event attribute and exception event, not just the key ones
    #[arg(long)]
    pub attrs: bool,
    /// Print the API's JSON instead of the tree
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, clap::Args)]
pub struct TracesArgs {
    /// Only traces with a span of this service
    #[arg(long)]
    pub service: Option<String>,
    /// Only traces with a span of this name (use with --service)
    #[arg(long)]
    pub operation: Option<String>,
    /// Only traces with at least one error span
    #[arg(long)]
    pub error: bool,
    /// Only traces with a span (matching the other filters) at least this long, e.g. 100ms, 1.5s
    #[arg(long, value_parser = duration_text)]
    pub min_duration: Option<String>,
    /// Only traces with a span (matching the other filters) at most this long
    #[arg(long, value_parser = duration_text)]
    pub max_duration: Option<String>,
    /// Only traces with a span attribute key:value (repeatable; all must match)
    #[arg(long = "attr", value_name = "KEY:VALUE", value_parser = attribute_filter)]
    pub attrs: Vec<String>,
    #[command(flatten)]
    pub window: TimeWindow,
    /// At most this many traces (newest first)
    #[arg(long)]
    pub limit: Option<u32>,
    /// Print the API's JSON instead of the table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only records of this service
    #[arg(long)]
    pub service: Option<String>,
    /// Minimum severity: trace, debug, info, warn, error, fatal
    #[arg(long)]
    pub severity: Option<String>,
    /// Only records correlated with this trace
    #[arg(long)]
    pub trace_id: Option<String>,
    /// Only records whose body contains this text
    #[arg(long)]
    pub grep: Option<String>,
    #[command(flatten)]
    pub window: TimeWindow,
    /// At most this many records (newest first)
    #[arg(long)]
    pub limit: Option<u32>,
    /// Print the API's JSON instead of one line per record
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

/// A time range: relative (`--since 1h`) or absolute (`--start`/`--end`).
#[derive(Debug, Clone, clap::Args)]
pub struct TimeWindow {
    /// Only data from this long ago until now, e.g. 15m, 1h, 2d
    #[arg(long, value_parser = duration_text, conflicts_with = "start")]
    pub since: Option<String>,
    /// Start of the range: RFC 3339 (2026-01-02T15:04:05Z) or unix nanoseconds
    #[arg(long)]
    pub start: Option<String>,
    /// End of the range: RFC 3339 or unix nanoseconds
    #[arg(long)]
    pub end: Option<String>,
}

/// `ashiato trace <id>`.
pub fn trace(args: TraceArgs) -> anyhow::Result<()> {
    let id = TraceId::from_hex(args.trace_id.trim())
        .map_err(|error| anyhow::anyhow!("invalid trace id {:?}: {error}", args.trace_id))?;
    let api = args.server.api();
    let document = api.get_json(&format!("/api/v1/traces/{}", id.to_hex()), &[])?;
    if args.json {
        return print_json(&document);
    }
    let options = TraceRenderOptions {
        all_attributes: args.attrs,
    };
    write_stdout(&render::render_trace(&document, options)?)
}

/// `ashiato traces`.
pub fn traces(args: TracesArgs) -> anyhow::Result<()> {
    let api = args.server.api();
    let document = api.get_json("/api/v1/traces", &traces_query(&args)?)?;
    if args.json {
        return print_json(&document);
    }
    if is_empty_list(&document, "traces") {
        eprintln!("no traces found");
        return Ok(());
    }
    write_stdout(&render::render_trace_list(&document)?)
}

/// `ashiato logs`.
pub fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let api = args.server.api();
    let document = api.get_json("/api/v1/logs", &logs_query(&args)?)?;
    if args.json {
        return print_json(&document);
    }
    if is_empty_list(&document, "logs") {
        eprintln!("no logs found");
        return Ok(());
    }
    write_stdout(&render::render_log_list(&document)?)
}

type Query = Vec<(&'static str, String)>;

fn traces_query(args: &TracesArgs) -> anyhow::Result<Query> {
    let mut query = Query::new();
    push_some(&mut query, "service", &args.service);
    push_some(&mut query, "operation", &args.operation);
    if args.error {
        query.push(("error", "true".to_owned()));
    }
    push_some(&mut query, "min_duration", &args.min_duration);
    push_some(&mut query, "max_duration", &args.max_duration);
    for attr in &args.attrs {
        query.push(("attr", attr.clone()));
    }
    push_window(&mut query, &args.window, now_unix_nanos())?;
    push_some(
        &mut query,
        "limit",
        &args.limit.map(|limit| limit.to_string()),
    );
    Ok(query)
}

fn logs_query(args: &LogsArgs) -> anyhow::Result<Query> {
    let mut query = Query::new();
    push_some(&mut query, "service", &args.service);
    push_some(&mut query, "severity", &args.severity);
    if let Some(trace_id) = &args.trace_id {
        let id = TraceId::from_hex(trace_id.trim())
            .map_err(|error| anyhow::anyhow!("invalid trace id {trace_id:?}: {error}"))?;
        query.push(("trace_id", id.to_hex()));
    }
    push_some(&mut query, "q", &args.grep);
    push_window(&mut query, &args.window, now_unix_nanos())?;
    push_some(
        &mut query,
        "limit",
        &args.limit.map(|limit| limit.to_string()),
    );
    Ok(query)
}

fn push_some(query: &mut Query, key: &'static str, value: &Option<String>) {
    if let Some(value) = value {
        query.push((key, value.clone()));
    }
}

/// `--since` becomes an absolute start in unix nanos, computed here so the
/// range means "until now" on this machine's clock.
fn push_window(query: &mut Query, window: &TimeWindow, now: u64) -> anyhow::Result<()> {
    if let Some(since) = &window.since {
        let back = parse_duration_ns(since)?;
        query.push(("start", now.saturating_sub(back).to_string()));
    }
    push_some(query, "start", &window.start);
    push_some(query, "end", &window.end);
    Ok(())
}

fn is_empty_list(document: &Value, key: &str) -> bool {
    document
        .get(key)
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
}

fn print_json(document: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(document)?;
    text.push('\n');
    write_stdout(&text)
}

/// Writes to stdout; a closed pipe (`ashiato logs | head`) is a normal end,
/// not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

/// clap value parser: checks a duration early, keeps the user's spelling
/// for the server.
fn duration_text(text: &str) -> Result<String, String> {
    parse_duration_ns(text)
        .map(|_| text.to_owned())
        .map_err(|error| error.to_string())
}

fn attribute_filter(text: &str) -> Result<String, String> {
    match text.split_once(':') {
        Some((key, _)) if !key.is_empty() => Ok(text.to_owned()),
        _ => Err(format!(
            "expected KEY:VALUE, e.g. http.route:/orders, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(since: Option<&str>, start: Option<&str>, end: Option<&str>) -> TimeWindow {
        TimeWindow {
            since: since.map(str::to_owned),
            start: start.map(str::to_owned),
            end: end.map(str::to_owned),
        }
    }

    #[test]
    fn test_since_becomes_absolute_start() {
        let mut query = Query::new();
        push_window(
            &mut query,
            &window(Some("1h"), None, None),
            7_200_000_000_000,
        )
        .unwrap();
        assert_eq!(query, vec![("start", "3600000000000".to_owned())]);
    }

    #[test]
    fn test_since_longer_than_epoch_clamps_to_zero() {
        let mut query = Query::new();
        push_window(&mut query, &window(Some("1d"), None, Some("5")), 10).unwrap();
        assert_eq!(
            query,
            vec![("start", "0".to_owned()), ("end", "5".to_owned())]
        );
    }

    #[test]
    fn test_traces_query_maps_every_flag() {
        let args = TracesArgs {
            service: Some("payments".into()),
            operation: Some("支払い処理".into()),
            error: true,
            min_duration: Some("100ms".into()),
            max_duration: Some("2s".into()),
            attrs: vec!["user_id:123".into(), "http.route:/orders".into()],
            window: window(None, Some("2026-01-01T00:00:00Z"), None),
            limit: Some(5),
            json: false,
            server: ServerArg {
                server: String::new(),
                token: None,
            },
        };
        let query = traces_query(&args).unwrap();
        let keys: Vec<&str> = query.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            keys,
            [
                "service",
                "operation",
                "error",
                "min_duration",
                "max_duration",
                "attr",
                "attr",
                "start",
                "limit"
            ]
        );
    }

    #[test]
    fn test_logs_query_normalises_trace_id_and_refuses_garbage() {
        let mut args = LogsArgs {
            service: None,
            severity: Some("error".into()),
            trace_id: Some("D269B633813FC60C".into()),
            grep: Some("残高不足".into()),
            window: window(None, None, None),
            limit: None,
            json: false,
            server: ServerArg {
                server: String::new(),
                token: None,
            },
        };
        let query = logs_query(&args).unwrap();
        assert_eq!(
            query[1],
            ("trace_id", "0000000000000000d269b633813fc60c".to_owned())
        );
        args.trace_id = Some("xyz".into());
        assert!(logs_query(&args).is_err());
    }

    #[test]
    fn test_flag_parsers() {
        assert!(duration_text("100ms").is_ok());
        assert!(duration_text("100").is_err());
        assert!(attribute_filter("k:v:w").is_ok());
        assert!(attribute_filter("nocolon").is_err());
        assert!(attribute_filter(":v").is_err());
    }
}

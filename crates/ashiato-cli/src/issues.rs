//! `ashiato issues` (a table of issues) and `ashiato issue ID [resolve |
//! ignore | reopen]` (one issue with its stack and facets, or a status
//! change), through the query API.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Value, json};

use crate::client::ServerArg;
use crate::client::http::{agent, normalise_base, status_error, unreachable_error};
use crate::render::timefmt::format_unix_nanos;

#[derive(Debug, clap::Args)]
pub struct IssuesArgs {
    /// Only issues in this state: open, resolved, ignored
    #[arg(long)]
    pub status: Option<String>,
    /// Only issues of this service
    #[arg(long)]
    pub service: Option<String>,
    /// Only issues of this environment
    #[arg(long)]
    pub environment: Option<String>,
    /// Only issues seen in spans or in logs: span, log
    #[arg(long)]
    pub source: Option<String>,
    /// Text to find in title, message, type or culprit
    #[arg(long)]
    pub q: Option<String>,
    /// Order: last_seen, first_seen, count
    #[arg(long)]
    pub sort: Option<String>,
    /// At most this many issues
    #[arg(long)]
    pub limit: Option<u32>,
    /// Print the API's JSON instead of the table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IssueAction {
    Resolve,
    Ignore,
    Reopen,
}

#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// Issue id (12 hex digits, as `ashiato issues` shows)
    pub id: String,
    /// Change the status instead of showing the issue
    pub action: Option<IssueAction>,
    /// With resolve: occurrences from older versions do not reopen it
    #[arg(long, value_name = "VERSION")]
    pub in_version: Option<String>,
    /// Print the API's JSON instead of the detail view
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub fn list(args: IssuesArgs) -> anyhow::Result<()> {
    let api = args.server.api();
    let mut query = Vec::new();
    let options = [
        ("status", &args.status),
        ("service", &args.service),
        ("environment", &args.environment),
        ("source", &args.source),
        ("q", &args.q),
        ("sort", &args.sort),
    ];
    for (key, value) in options {
        if let Some(value) = value {
            query.push((key, value.clone()));
        }
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let document = api.get_json("/api/v1/issues", &query)?;
    let text = if args.json {
        format!("{document:#}\n")
    } else {
        render_list(&document)
    };
    print(&text)
}

pub fn issue(args: IssueArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/issues/{}", args.id.trim());
    let document = match args.action {
        None => args.server.api().get_json(&path, &[])?,
        Some(action) => {
            let status = match action {
                IssueAction::Resolve => "resolved",
                IssueAction::Ignore => "ignored",
                IssueAction::Reopen => "open",
            };
            let mut body = json!({ "status": status });
            if let (IssueAction::Resolve, Some(version)) = (action, &args.in_version) {
                body["resolved_in_version"] = json!(version);
            }
            patch(&args.server, &path, &body)?
        }
    };
    let text = if args.json {
        format!("{document:#}\n")
    } else {
        render_detail(&document)
    };
    print(&text)
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn patch(server: &ServerArg, path: &str, body: &Value) -> anyhow::Result<Value> {
    let base = normalise_base(&server.server);
    let url = format!("{base}{path}");
    let mut request = agent()
        .patch(&url)
        .header("content-type", "application/json");
    if let Some(token) = &server.token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request
        .send(body.to_string())
        .map_err(|error| unreachable_error(&base, &error))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|error| anyhow::anyhow!("reading the answer of {url} failed: {error}"))?;
    if !(200..300).contains(&status) {
        return Err(status_error(status, &text));
    }
    serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("unexpected answer from {url}: not JSON ({error})"))
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

fn nanos(value: &Value, key: &str) -> String {
    text(value, key)
        .parse::<u64>()
        .map_or_else(|_| "-".to_owned(), format_unix_nanos)
}

fn status_label(issue: &Value) -> String {
    let status = text(issue, "status");
    if issue["regressed"].as_bool() == Some(true) && status == "open" {
        "regressed".to_owned()
    } else {
        status.to_owned()
    }
}

/// `STATUS  COUNT  LAST SEEN  ID  TITLE  SERVICE`, one issue a line.
pub fn render_list(document: &Value) -> String {
    let issues = document["issues"].as_array().cloned().unwrap_or_default();
    if issues.is_empty() {
        return "no issues\n".to_owned();
    }
    let mut out = format!(
        "{:<10} {:>7}  {:<23}  {:<12}  {}  ({})\n",
        "STATUS", "COUNT", "LAST SEEN", "ID", "TITLE", "SERVICE"
    );
    for issue in &issues {
        let _ = writeln!(
            out,
            "{:<10} {:>7}  {:<23}  {:<12}  {}  ({})",
            status_label(issue),
            issue["count"].as_u64().unwrap_or(0),
            nanos(issue, "last_seen"),
            text(issue, "id"),
            truncate(text(issue, "title"), 100),
            text(issue, "service"),
        );
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// The issue's fields, its stack (in-app frames marked) and facets.
pub fn render_detail(issue: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", text(issue, "id"), text(issue, "title"));
    let _ = writeln!(
        out,
        "status {}  count {}  service {}  environment {}",
        status_label(issue),
        issue["count"].as_u64().unwrap_or(0),
        text(issue, "service"),
        or_dash(text(issue, "environment")),
    );
    let _ = writeln!(
        out,
        "first seen {} ({})  last seen {} ({})",
        nanos(issue, "first_seen"),
        or_dash(text(issue, "first_version")),
        nanos(issue, "last_seen"),
        or_dash(text(issue, "last_version")),
    );
    if let Some(version) = issue["resolved_in_version"].as_str() {
        let _ = writeln!(out, "resolved in version {version}");
    }
    let last_change = issue["status_history"]
        .as_array()
        .and_then(|history| history.first());
    if let Some(change) = last_change
        && let Some(by) = change["changed_by"].as_str()
    {
        let _ = writeln!(
            out,
            "set {} by {by} at {}",
            text(change, "status"),
            nanos(change, "time_unix_nano")
        );
    }
    let _ = writeln!(out, "culprit {}", or_dash(text(issue, "culprit")));
    let _ = writeln!(out, "message {}", text(issue, "message"));
    if let Some(frames) = issue["stack"]
        .as_array()
        .filter(|frames| !frames.is_empty())
    {
        out.push_str("\nstack (crash site first, * = in-app)\n");
        for frame in frames {
            let mark = if frame["in_app"].as_bool() == Some(true) {
                '*'
            } else {
                ' '
            };
            let line = frame["line"]
                .as_u64()
                .map_or_else(String::new, |line| format!(":{line}"));
            let _ = writeln!(
                out,
                "  {mark} {} in {}  {}{line}",
                text(frame, "function"),
                text(frame, "module"),
                text(frame, "file"),
            );
        }
    }
    if let Some(facets) = issue["facets"]
        .as_array()
        .filter(|facets| !facets.is_empty())
    {
        out.push_str("\nfacets\n");
        for facet in facets {
            let values: Vec<String> = facet["values"]
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .take(5)
                        .map(|value| {
                            format!(
                                "{} ({})",
                                text(value, "value"),
                                value["count"].as_u64().unwrap_or(0)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(out, "  {}: {}", text(facet, "key"), values.join(", "));
        }
    }
    if let Some(samples) = issue["samples"]
        .as_array()
        .filter(|samples| !samples.is_empty())
    {
        out.push_str("\nsamples (first, then latest)\n");
        for sample in samples.iter().take(6) {
            let _ = writeln!(
                out,
                "  {}  {}  trace {}",
                nanos(sample, "time_unix_nano"),
                text(sample, "source"),
                or_dash(sample["trace_id"].as_str().unwrap_or("")),
            );
        }
    }
    out
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

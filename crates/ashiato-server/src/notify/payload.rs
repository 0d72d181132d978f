//! Webhook bodies (`json` or `slack`) for one issue event and for a storm
//! digest, and the redaction of webhook urls for logs and the API.
//!
//! Every telemetry-derived field of a Slack message (title, service,
//! environment, culprit, frame names) goes through [`slack_escape`]: Slack
//! reads `<…>` as links and mentions (`<!channel>`), so a service name from
//! an SDK must never reach it as markup. JSON bodies carry the raw values
//! (the receiver's JSON parser is the boundary).

use std::time::Duration;

use ashiato_errors::outbox::HeldEvent;
use ashiato_errors::{IssueEvent, IssueEventKind};
use serde_json::{Value, json};

use super::{NotifyConfig, WebhookFormat};

/// Issues listed by name in a digest.
const DIGEST_TOP: usize = 5;

/// Slack's mrkdwn escapes: `&`, `<` and `>` only.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A webhook url as logs and the API show it: scheme and host (and port),
/// never the path, query or credentials (a Slack webhook's path is its
/// secret): `https://hooks.slack.com/…`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "…".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // user:password@ is a secret too
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let hidden = if rest[end..].trim_start_matches('/').is_empty() {
        ""
    } else {
        "/…"
    };
    format!("{scheme}://{host}{hidden}")
}

fn base_url(config: &NotifyConfig) -> &str {
    config
        .public_url
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/')
}

fn issue_link(config: &NotifyConfig, id: &str) -> String {
    format!("{}/issues/{id}", base_url(config))
}

/// The webhook body for one event.
pub fn event_body(event: &IssueEvent, config: &NotifyConfig) -> Value {
    let issue = &event.issue;
    let link = issue_link(config, issue.id.as_str());
    match config.format {
        WebhookFormat::Json => {
            let frame = event.top_frame.as_ref().map(|frame| {
                json!({
                    "function": frame.function,
                    "module": frame.module,
                    "file": frame.file,
                    "line": frame.line,
                })
            });
            json!({
                "event": event.kind.as_str(),
                "url": link,
                "issue": {
                    "id": issue.id.as_str(),
                    "title": issue.title,
                    "error_type": issue.error_type,
                    "message": issue.message,
                    "culprit": issue.culprit,
                    "service": issue.service,
                    "environment": issue.environment,
                    "status": issue.status.as_str(),
                    "regressed": issue.regressed,
                    "count": issue.count,
                    "first_seen": issue.first_seen.to_string(),
                    "last_seen": issue.last_seen.to_string(),
                    "first_version": issue.first_version,
                    "last_version": issue.last_version,
                },
                "top_frame": frame,
            })
        }
        WebhookFormat::Slack => {
            let what = match event.kind {
                IssueEventKind::NewIssue => "New issue",
                IssueEventKind::Regression => "Regression",
            };
            let place = event.top_frame.as_ref().map_or_else(
                || issue.culprit.clone(),
                |frame| format!("{} in {}", frame.module, frame.function),
            );
            let text = format!(
                "*{what}* in `{}`{}: <{}|{}>\n{}",
                slack_escape(&issue.service),
                environment_suffix(&issue.environment),
                slack_escape(&link),
                slack_escape(&issue.title),
                slack_escape(&place),
            );
            json!({ "text": text })
        }
    }
}

fn environment_suffix(environment: &str) -> String {
    if environment.is_empty() {
        String::new()
    } else {
        format!(" ({})", slack_escape(environment))
    }
}

/// `5m`, `90s`, `1h`: the window as people write it.
fn human(window: Duration) -> String {
    let seconds = window.as_secs();
    if seconds >= 3_600 && seconds.is_multiple_of(3_600) {
        format!("{}h", seconds / 3_600)
    } else if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{} minutes", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// "43 new issues and 2 regressions": what a digest sums up.
fn digest_headline(held: &[HeldEvent]) -> String {
    let regressions = held
        .iter()
        .filter(|event| event.kind == IssueEventKind::Regression)
        .count();
    let new = held.len() - regressions;
    let plural = |count: usize, one: &str, many: &str| {
        format!("{count} {}", if count == 1 { one } else { many })
    };
    match (new, regressions) {
        (new, 0) => plural(new, "new issue", "new issues"),
        (0, regressions) => plural(regressions, "regression", "regressions"),
        (new, regressions) => format!(
            "{} and {}",
            plural(new, "new issue", "new issues"),
            plural(regressions, "regression", "regressions")
        ),
    }
}

/// The webhook body summing up the events held during a storm: how many,
/// the top [`DIGEST_TOP`] by occurrences, and a link to the issue list.
pub fn digest_body(held: &[HeldEvent], window: Duration, config: &NotifyConfig) -> Value {
    let mut top: Vec<&HeldEvent> = held.iter().collect();
    top.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.time_unix_nano.cmp(&b.time_unix_nano))
    });
    top.truncate(DIGEST_TOP);
    let list = format!("{}/issues", base_url(config));
    let headline = format!("{} in {}", digest_headline(held), human(window));
    match config.format {
        WebhookFormat::Json => json!({
            "event": "digest",
            "summary": headline,
            "new_issues": held.iter().filter(|event| event.kind == IssueEventKind::NewIssue).count(),
            "regressions": held.iter().filter(|event| event.kind == IssueEventKind::Regression).count(),
            "window_seconds": window.as_secs(),
            "url": list,
            "top": top.iter().map(|event| json!({
                "event": event.kind.as_str(),
                "id": event.issue_id.as_str(),
                "title": event.title,
                "service": event.service,
                "environment": event.environment,
                "count": event.count,
                "url": issue_link(config, event.issue_id.as_str()),
            })).collect::<Vec<_>>(),
        }),
        WebhookFormat::Slack => {
            let mut text = format!("*{headline}*, top {}:", top.len());
            for event in &top {
                text.push_str(&format!(
                    "\n• <{}|{}> in `{}`{} ({}×)",
                    slack_escape(&issue_link(config, event.issue_id.as_str())),
                    slack_escape(&event.title),
                    slack_escape(&event.service),
                    environment_suffix(&event.environment),
                    event.count
                ));
            }
            text.push_str(&format!("\n<{}|all issues>", slack_escape(&list)));
            json!({ "text": text })
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use ashiato_errors::{Frame, IssueId, IssueStatus, IssueSummary, Source};

    use super::*;

    pub(in crate::notify) fn event(kind: IssueEventKind) -> IssueEvent {
        IssueEvent {
            kind,
            issue: IssueSummary {
                id: IssueId::parse("0123456789ab").unwrap(),
                title: "ValueError: order <num> not found".into(),
                error_type: "ValueError".into(),
                message: "order 7 not found".into(),
                culprit: "api.orders in load".into(),
                service: "shop".into(),
                environment: "prod".into(),
                status: IssueStatus::Open,
                regressed: kind == IssueEventKind::Regression,
                sources: vec![Source::Span],
                count: 3,
                first_seen: 1,
                last_seen: 2,
                first_version: "1.0".into(),
                last_version: "1.1".into(),
                resolved_in_version: None,
                hourly_24h: Vec::new(),
            },
            top_frame: Some(Frame {
                function: "load".into(),
                module: "api.orders".into(),
                file: "/app/api/orders.py".into(),
                line: Some(12),
                in_app: true,
            }),
        }
    }

    fn config(format: WebhookFormat) -> NotifyConfig {
        NotifyConfig {
            webhooks: vec!["http://hook".into()],
            format,
            public_url: Some("https://ashiato.example.com/".into()),
            ..NotifyConfig::default()
        }
    }

    #[test]
    fn test_json_payload_has_event_issue_link_and_frame() {
        let body = event_body(
            &event(IssueEventKind::NewIssue),
            &config(WebhookFormat::Json),
        );
        assert_eq!(body["event"], "new_issue");
        assert_eq!(
            body["url"],
            "https://ashiato.example.com/issues/0123456789ab"
        );
        assert_eq!(body["issue"]["title"], "ValueError: order <num> not found");
        assert_eq!(body["issue"]["first_seen"], "1");
        assert_eq!(body["top_frame"]["function"], "load");
        assert_eq!(body["top_frame"]["line"], 12);
    }

    #[test]
    fn test_slack_payload_is_one_text() {
        let config = NotifyConfig {
            format: WebhookFormat::Slack,
            ..NotifyConfig::default()
        };
        let body = event_body(&event(IssueEventKind::Regression), &config);
        assert_eq!(
            body["text"],
            "*Regression* in `shop` (prod): </issues/0123456789ab|ValueError: order &lt;num&gt; not found>\napi.orders in load"
        );
    }

    #[test]
    fn test_slack_escapes_every_telemetry_field() {
        let mut hostile = event(IssueEventKind::NewIssue);
        hostile.issue.service = "<!channel> <https://evil.example|click>".into();
        hostile.issue.environment = "prod & <!here>".into();
        hostile.issue.title = "<@U123> boom".into();
        if let Some(frame) = hostile.top_frame.as_mut() {
            frame.module = "<https://x|y>".into();
            frame.function = "f<>".into();
        }
        let text = event_body(&hostile, &config(WebhookFormat::Slack))["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            text,
            "*New issue* in `&lt;!channel&gt; &lt;https://evil.example|click&gt;` (prod &amp; &lt;!here&gt;): \
             <https://ashiato.example.com/issues/0123456789ab|&lt;@U123&gt; boom>\n\
             &lt;https://x|y&gt; in f&lt;&gt;"
        );
        // the only markup left is the issue link ashiato made
        assert_eq!(text.matches('<').count(), 1, "{text}");
        let held = [HeldEvent {
            time_unix_nano: 1,
            kind: IssueEventKind::NewIssue,
            issue_id: IssueId::parse("0123456789ab").unwrap(),
            title: "<!channel>".into(),
            service: "<!here>".into(),
            environment: "<b>".into(),
            count: 1,
        }];
        let digest = digest_body(
            &held,
            Duration::from_secs(300),
            &config(WebhookFormat::Slack),
        );
        let text = digest["text"].as_str().unwrap_or_default();
        assert!(!text.contains("<!"), "{text}");
        assert!(!text.contains("<b>"), "{text}");
        assert_eq!(text.matches('<').count(), 2, "{text}");
    }

    fn held(count: usize) -> Vec<HeldEvent> {
        (0..count)
            .map(|index| HeldEvent {
                time_unix_nano: index as u64,
                kind: if index % 10 == 9 {
                    IssueEventKind::Regression
                } else {
                    IssueEventKind::NewIssue
                },
                issue_id: IssueId::parse(&format!("{index:012x}")).unwrap(),
                title: format!("Error{index}"),
                service: "shop".into(),
                environment: String::new(),
                count: (index % 7) as u64,
            })
            .collect()
    }

    #[test]
    fn test_digest_counts_and_lists_the_top_five() {
        let body = digest_body(
            &held(43),
            Duration::from_secs(300),
            &config(WebhookFormat::Json),
        );
        assert_eq!(body["event"], "digest");
        assert_eq!(
            body["summary"],
            "39 new issues and 4 regressions in 5 minutes"
        );
        assert_eq!(body["new_issues"], 39);
        assert_eq!(body["regressions"], 4);
        assert_eq!(body["url"], "https://ashiato.example.com/issues");
        let top: Vec<(&str, u64)> = body["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["title"].as_str().unwrap(),
                    entry["count"].as_u64().unwrap(),
                )
            })
            .collect();
        // most occurrences first, earlier first among equals
        assert_eq!(
            top,
            [
                ("Error6", 6),
                ("Error13", 6),
                ("Error20", 6),
                ("Error27", 6),
                ("Error34", 6)
            ]
        );
        let slack = digest_body(
            &held(2),
            Duration::from_secs(90),
            &config(WebhookFormat::Slack),
        );
        assert_eq!(
            slack["text"],
            "*2 new issues in 90s*, top 2:\n\
             • <https://ashiato.example.com/issues/000000000001|Error1> in `shop` (1×)\n\
             • <https://ashiato.example.com/issues/000000000000|Error0> in `shop` (0×)\n\
             <https://ashiato.example.com/issues|all issues>"
        );
    }

    #[test]
    fn test_headline_wording() {
        let cases = [
            (1, 0, "1 new issue"),
            (0, 1, "1 regression"),
            (0, 3, "3 regressions"),
            (2, 1, "2 new issues and 1 regression"),
        ];
        for (new, regressions, expected) in cases {
            let mut events = held(new + regressions);
            for (index, event) in events.iter_mut().enumerate() {
                event.kind = if index < new {
                    IssueEventKind::NewIssue
                } else {
                    IssueEventKind::Regression
                };
            }
            assert_eq!(digest_headline(&events), expected);
        }
        assert_eq!(human(Duration::from_secs(3_600)), "1h");
        assert_eq!(human(Duration::from_secs(300)), "5 minutes");
        assert_eq!(human(Duration::from_secs(45)), "45s");
    }

    #[test]
    fn test_redact_url_hides_path_query_and_credentials() {
        let cases = [
            (
                "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                "https://hooks.slack.com/…",
            ),
            (
                "http://127.0.0.1:9000/hook?token=abc",
                "http://127.0.0.1:9000/…",
            ),
            ("https://user:pass@example.com/x", "https://example.com/…"),
            ("https://example.com", "https://example.com"),
            ("https://example.com/", "https://example.com"),
            ("https://example.com?k=v", "https://example.com/…"),
            ("not a url", "…"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }
}

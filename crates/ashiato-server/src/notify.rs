//! Webhook notifications for new and regressed issues.
//!
//! The tracker thread hands [`IssueEvent`]s over with a non-blocking send;
//! each (event, webhook) delivery runs as its own task: POST the payload
//! (`json` or `slack`), and on failure retry with doubling backoff up to
//! [`MAX_ATTEMPTS`]. Nothing here can slow ingest: the tracker never waits
//! for a delivery, and deliveries never touch the ingest path. Every
//! outcome is logged and kept in a bounded list of recent deliveries for
//! `GET /api/v1/notifications`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ashiato_errors::{Delivery, DeliveryStatus, IssueEvent, now_unix_nano};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Attempts per delivery (the first plus retries).
pub const MAX_ATTEMPTS: u32 = 4;
/// The first retry waits this long; each further one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// A webhook that does not answer within this is a failed attempt.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Recent deliveries kept for the API.
const RECENT: usize = 200;

/// Payload shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

impl WebhookFormat {
    pub fn parse(text: &str) -> Option<WebhookFormat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Some(WebhookFormat::Json),
            "slack" => Some(WebhookFormat::Slack),
            _ => None,
        }
    }
}

/// Where and how to notify.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyConfig {
    pub webhooks: Vec<String>,
    pub format: WebhookFormat,
    /// Base URL of the UI for links (`--public-url`); the server fills in
    /// its UI listener's address when it is not set.
    pub public_url: Option<String>,
}

/// Cheap to clone; sends events to the delivery task.
#[derive(Clone)]
pub struct Notifier {
    events: Option<mpsc::UnboundedSender<IssueEvent>>,
    recent: Arc<Mutex<VecDeque<Delivery>>>,
}

impl Notifier {
    /// Starts the delivery task (none without webhooks). Must be called
    /// within the tokio runtime.
    pub fn start(config: NotifyConfig) -> Notifier {
        let recent = Arc::new(Mutex::new(VecDeque::new()));
        if config.webhooks.is_empty() {
            return Notifier {
                events: None,
                recent,
            };
        }
        let (sender, mut receiver) = mpsc::unbounded_channel::<IssueEvent>();
        let config = Arc::new(config);
        let shared = recent.clone();
        tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                for url in &config.webhooks {
                    let delivery = Delivery {
                        time_unix_nano: now_unix_nano(),
                        issue_id: event.issue.id.clone(),
                        event: event.kind,
                        url: url.clone(),
                        status: DeliveryStatus::Retrying,
                        attempts: 0,
                        error: None,
                    };
                    let body = payload(&event, &config);
                    tokio::spawn(deliver(delivery, body, shared.clone()));
                }
            }
        });
        Notifier {
            events: Some(sender),
            recent,
        }
    }

    /// Queues an event; never blocks (events are rare: one per new issue
    /// or regression, never per occurrence).
    pub fn notify(&self, event: IssueEvent) {
        if let Some(events) = &self.events
            && events.send(event).is_err()
        {
            tracing::warn!("notifier stopped, issue event not delivered");
        }
    }

    /// Recent deliveries, newest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.recent).iter().rev().cloned().collect()
    }
}

fn lock(recent: &Mutex<VecDeque<Delivery>>) -> std::sync::MutexGuard<'_, VecDeque<Delivery>> {
    recent.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// One delivery with retries; its entry in `recent` is updated in place.
async fn deliver(mut delivery: Delivery, body: Value, recent: Arc<Mutex<VecDeque<Delivery>>>) {
    let slot = {
        let mut list = lock(&recent);
        if list.len() >= RECENT {
            list.pop_front();
        }
        list.push_back(delivery.clone());
        (
            delivery.time_unix_nano,
            delivery.url.clone(),
            delivery.issue_id.clone(),
        )
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        delivery.attempts += 1;
        let url = delivery.url.clone();
        let text = body.to_string();
        let outcome = tokio::task::spawn_blocking(move || post(&url, &text))
            .await
            .unwrap_or_else(|error| Err(format!("delivery task failed: {error}")));
        match outcome {
            Ok(()) => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.error = None;
                tracing::info!(url = %delivery.url, issue = %delivery.issue_id, event = delivery.event.as_str(), attempts = delivery.attempts, "webhook delivered");
            }
            Err(error) => {
                let last = delivery.attempts >= MAX_ATTEMPTS;
                delivery.status = if last {
                    DeliveryStatus::Failed
                } else {
                    DeliveryStatus::Retrying
                };
                tracing::warn!(url = %delivery.url, issue = %delivery.issue_id, attempts = delivery.attempts, %error, will_retry = !last, "webhook delivery failed");
                delivery.error = Some(error);
            }
        }
        update(&recent, &slot, &delivery);
        if delivery.status != DeliveryStatus::Retrying {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

fn update(
    recent: &Mutex<VecDeque<Delivery>>,
    slot: &(u64, String, ashiato_errors::IssueId),
    delivery: &Delivery,
) {
    let mut list = lock(recent);
    if let Some(entry) = list.iter_mut().find(|entry| {
        entry.time_unix_nano == slot.0 && entry.url == slot.1 && entry.issue_id == slot.2
    }) {
        *entry = delivery.clone();
    }
}

fn post(url: &str, body: &str) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("webhook answered {status}"))
    }
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` only.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn issue_link(event: &IssueEvent, config: &NotifyConfig) -> String {
    let base = config
        .public_url
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    format!("{base}/issues/{}", event.issue.id)
}

/// The webhook body for one event.
pub fn payload(event: &IssueEvent, config: &NotifyConfig) -> Value {
    let link = issue_link(event, config);
    let issue = &event.issue;
    let frame = event.top_frame.as_ref().map(|frame| {
        json!({
            "function": frame.function,
            "module": frame.module,
            "file": frame.file,
            "line": frame.line,
        })
    });
    match config.format {
        WebhookFormat::Json => json!({
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
        }),
        WebhookFormat::Slack => {
            let what = match event.kind {
                ashiato_errors::IssueEventKind::NewIssue => "New issue",
                ashiato_errors::IssueEventKind::Regression => "Regression",
            };
            let place = event.top_frame.as_ref().map_or_else(
                || issue.culprit.clone(),
                |frame| format!("{} in {}", frame.module, frame.function),
            );
            let text = format!(
                "*{what}* in `{}`{}: <{link}|{}>\n{}",
                issue.service,
                if issue.environment.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", issue.environment)
                },
                slack_escape(&issue.title),
                place
            );
            json!({ "text": text })
        }
    }
}

#[cfg(test)]
mod tests {
    use ashiato_errors::{Frame, IssueEventKind, IssueId, IssueStatus, IssueSummary, Source};

    use super::*;

    fn event(kind: IssueEventKind) -> IssueEvent {
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

    #[test]
    fn test_json_payload_has_event_issue_link_and_frame() {
        let config = NotifyConfig {
            webhooks: vec!["http://hook".into()],
            format: WebhookFormat::Json,
            public_url: Some("https://ashiato.example.com/".into()),
        };
        let body = payload(&event(IssueEventKind::NewIssue), &config);
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
        let body = payload(&event(IssueEventKind::Regression), &config);
        assert_eq!(
            body["text"],
            "*Regression* in `shop` (prod): </issues/0123456789ab|ValueError: order &lt;num&gt; not found>\napi.orders in load"
        );
    }

    #[test]
    fn test_formats_parse() {
        assert_eq!(WebhookFormat::parse("Slack"), Some(WebhookFormat::Slack));
        assert_eq!(WebhookFormat::parse("json"), Some(WebhookFormat::Json));
        assert_eq!(WebhookFormat::parse("xml"), None);
    }
}

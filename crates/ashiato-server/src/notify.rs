//! Webhook notifications for new and regressed issues, built so that no
//! endpoint can hurt the server.
//!
//! - The tracker thread hands [`IssueEvent`]s over with a non-blocking send
//!   into a bounded queue ([`QUEUE`]); when it is full the event is held for
//!   the next digest straight in the outbox (persisted and counted), never
//!   waited for.
//! - One intake thread turns events into deliveries in the outbox
//!   (`<data_dir>/errors.sqlite`, [`ashiato_errors::outbox`]): one per
//!   webhook, or, during an alert storm ([`storm`]), one digest per window.
//! - One sender thread per webhook (concurrency 1 per endpoint) posts due
//!   deliveries with connect and overall timeouts and records each attempt;
//!   failures retry with exponential backoff ([`BACKOFF`]) until they are
//!   marked failed. Nothing here runs on the async runtime or its blocking
//!   pool, so a hanging endpoint holds one thread of its own, not ingest or
//!   queries. Pending and retrying deliveries resume after a restart.
//!
//! Webhook urls are secrets (a Slack url's path is its credential): logs,
//! `Debug` output and `GET /api/v1/notifications` show them redacted.

mod payload;
mod storm;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ashiato_errors::outbox::{Backoff, DueDelivery, HeldEvent, KEEP_FINISHED, NewDelivery, Outbox};
use ashiato_errors::{Delivery, DeliveryStatus, ErrorsDbError, IssueEvent, now_unix_nano};

pub use payload::redact_url;
use storm::{Decision, Storm};

/// Events waiting for the intake thread; beyond, they go to the outbox
/// directly as held (digest) events.
const QUEUE: usize = 1_024;
/// Retries: 1 s, 2 s, 4 s … at most 10 minutes apart, failed after 12
/// attempts (about 27 minutes of trying).
pub const BACKOFF: Backoff = Backoff {
    first: Duration::from_secs(1),
    max_delay: Duration::from_secs(600),
    max_attempts: 12,
};
/// An endpoint that does not accept the connection within this fails the
/// attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole attempt (connect, send, answer) ends after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the intake thread checks for a due digest.
const TICK: Duration = Duration::from_secs(1);
/// A sender with nothing due looks again after this at the latest.
const IDLE: Duration = Duration::from_secs(30);
/// Deliveries listed by `GET /api/v1/notifications`.
const RECENT: usize = 200;
/// How often finished deliveries beyond [`KEEP_FINISHED`] are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Most webhooks (each gets its own sender thread).
pub const MAX_WEBHOOKS: usize = 16;

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
#[derive(Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub webhooks: Vec<String>,
    pub format: WebhookFormat,
    /// Base URL of the UI for links (`--public-url`); the server fills in
    /// its UI listener's address when it is not set.
    pub public_url: Option<String>,
    /// More new issues and regressions than this within `storm_window`
    /// are summed up in one digest per window.
    pub storm_threshold: usize,
    pub storm_window: Duration,
}

pub const DEFAULT_STORM_THRESHOLD: usize = 10;
pub const DEFAULT_STORM_WINDOW: Duration = Duration::from_secs(300);

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            webhooks: Vec::new(),
            format: WebhookFormat::default(),
            public_url: None,
            storm_threshold: DEFAULT_STORM_THRESHOLD,
            storm_window: DEFAULT_STORM_WINDOW,
        }
    }
}

/// Redacted: the startup log prints the config.
impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let webhooks: Vec<String> = self.webhooks.iter().map(|url| redact_url(url)).collect();
        f.debug_struct("NotifyConfig")
            .field("webhooks", &webhooks)
            .field("format", &self.format)
            .field("public_url", &self.public_url)
            .field("storm_threshold", &self.storm_threshold)
            .field("storm_window", &self.storm_window)
            .finish()
    }
}

/// What [`Notifier::figures`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationFigures {
    /// Pending and retrying deliveries in the outbox.
    pub queued: u64,
    /// Events held in the outbox for the next storm digest.
    pub held: u64,
    /// Deliveries that failed for good since the start.
    pub failed: u64,
    /// Events the intake queue had no room for since the start.
    pub overflowed: u64,
}

/// Cheap to clone; hands events to the intake thread.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

/// What the intake thread receives.
enum Message {
    /// Boxed: the queue's slots stay small.
    Event(Box<IssueEvent>),
    /// Wakes it at shutdown (the stop flag says what to do).
    Stop,
}

struct Shared {
    sender: Option<SyncSender<Message>>,
    path: PathBuf,
    /// The tracker thread's connection for events the queue had no room
    /// for (opened on first use).
    overflow: Mutex<Option<Outbox>>,
    overflowed: AtomicU64,
    /// Deliveries that failed for good since the start (the outbox prunes
    /// finished rows, so it cannot count them).
    failed: AtomicU64,
    /// The API's connection.
    reader: Mutex<Outbox>,
    stop: AtomicBool,
    /// One per sender thread: a new delivery or the stop.
    wakers: Vec<SyncSender<()>>,
    intake: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Notifier {
    /// Opens the outbox in `db` and starts the intake and sender threads
    /// (none without webhooks; the API still lists past deliveries).
    pub fn start(mut config: NotifyConfig, db: &Path) -> Result<Notifier, NotifyError> {
        // one delivery per endpoint, however often it was configured
        let mut seen = std::collections::HashSet::new();
        config.webhooks.retain(|url| seen.insert(url.clone()));
        let outbox = Outbox::open(db)?;
        let abandoned = outbox.abandon_others(&config.webhooks)?;
        if abandoned > 0 {
            tracing::warn!(
                deliveries = abandoned,
                "deliveries to webhooks no longer configured marked failed"
            );
        }
        let (backlog, held) = outbox.backlog()?;
        if backlog + held > 0 {
            tracing::info!(
                deliveries = backlog,
                held_events = held,
                "resuming webhook deliveries"
            );
        }
        let urls = config.webhooks.clone();
        let mut wakers = Vec::new();
        let mut senders = Vec::new();
        for (index, url) in urls.iter().enumerate() {
            let (waker, wake) = sync_channel(1);
            wakers.push(waker);
            senders.push((index, url.clone(), wake, Outbox::open(db)?));
        }
        let (sender, receiver) = if urls.is_empty() {
            (None, None)
        } else {
            let (sender, receiver) = sync_channel(QUEUE);
            (Some(sender), Some(receiver))
        };
        let shared = Arc::new(Shared {
            sender,
            path: db.to_owned(),
            overflow: Mutex::new(None),
            overflowed: AtomicU64::new(0),
            failed: AtomicU64::new(abandoned as u64),
            reader: Mutex::new(outbox),
            stop: AtomicBool::new(false),
            wakers,
            intake: Mutex::new(None),
        });
        for (index, url, wake, outbox) in senders {
            let worker = shared.clone();
            std::thread::Builder::new()
                .name(format!("ashiato-webhook-{index}"))
                .spawn(move || send_loop(&url, &outbox, &wake, &worker))
                .map_err(NotifyError::Thread)?;
        }
        if let Some(receiver) = receiver {
            let intake_outbox = Outbox::open(db)?;
            let worker = shared.clone();
            let handle = std::thread::Builder::new()
                .name("ashiato-notify".to_owned())
                .spawn(move || intake_loop(config, intake_outbox, &receiver, &worker))
                .map_err(NotifyError::Thread)?;
            *lock(&shared.intake) = Some(handle);
        }
        Ok(Notifier { shared })
    }

    /// Queues an event; never blocks on the queue (events are rare: one per
    /// new issue or regression, never per occurrence). When the queue is
    /// full the event is held for the storm digest in the outbox.
    pub fn notify(&self, event: IssueEvent) {
        let Some(sender) = &self.shared.sender else {
            return;
        };
        match sender.try_send(Message::Event(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(Message::Event(event))) => self.overflow(&event),
            Err(TrySendError::Full(Message::Stop)) => {}
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("notifier stopped, issue event not delivered");
            }
        }
    }

    fn overflow(&self, event: &IssueEvent) {
        let count = self.shared.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
        if count == 1 || count.is_multiple_of(1_000) {
            tracing::warn!(
                overflowed = count,
                "notification queue full, events held for the storm digest"
            );
        }
        let mut overflow = lock(&self.shared.overflow);
        if overflow.is_none() {
            match Outbox::open(&self.shared.path) {
                Ok(outbox) => *overflow = Some(outbox),
                Err(error) => {
                    tracing::error!(%error, issue = %event.issue.id, "notification lost: opening the outbox failed");
                    return;
                }
            }
        }
        if let Some(outbox) = overflow.as_mut()
            && let Err(error) = outbox.hold(&[held_event(event, now_unix_nano())])
        {
            tracing::error!(%error, issue = %event.issue.id, "notification lost: holding it failed");
        }
    }

    /// The outbox's backlog and the failure counters, for `/metrics` (two
    /// counts on the API's connection).
    pub fn figures(&self) -> NotificationFigures {
        let backlog = lock(&self.shared.reader).backlog();
        let (queued, held) = backlog.unwrap_or_else(|error| {
            tracing::warn!(%error, "reading the notification backlog failed");
            (0, 0)
        });
        NotificationFigures {
            queued,
            held,
            failed: self.shared.failed.load(Ordering::Relaxed),
            overflowed: self.shared.overflowed.load(Ordering::Relaxed),
        }
    }

    /// Recent deliveries, newest first, urls redacted.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let outbox = lock(&self.shared.reader);
        match outbox.recent(RECENT) {
            Ok(mut deliveries) => {
                for delivery in &mut deliveries {
                    delivery.error = delivery
                        .error
                        .as_deref()
                        .map(|error| error.replace(&delivery.url, &redact_url(&delivery.url)));
                    delivery.url = redact_url(&delivery.url);
                }
                deliveries
            }
            Err(error) => {
                tracing::warn!(%error, "reading webhook deliveries failed");
                Vec::new()
            }
        }
    }

    /// Stops the threads after the intake has stored what was queued
    /// (blocking: call off the async workers). A sender in the middle of an
    /// attempt finishes it alone; its delivery stays due for the next start
    /// unless the attempt is recorded first.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(sender) = &self.shared.sender {
            // a full queue wakes the intake anyway
            let _ = sender.try_send(Message::Stop);
        }
        for waker in &self.shared.wakers {
            let _ = waker.try_send(());
        }
        let intake = lock(&self.shared.intake).take();
        if let Some(intake) = intake
            && intake.join().is_err()
        {
            tracing::error!("notification intake thread ended abnormally");
        }
    }
}

/// Errors starting the notifier.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Db(#[from] ErrorsDbError),
    #[error("starting a notification thread: {0}")]
    Thread(std::io::Error),
}

fn held_event(event: &IssueEvent, now: u64) -> HeldEvent {
    HeldEvent {
        time_unix_nano: now,
        kind: event.kind,
        issue_id: event.issue.id.clone(),
        title: event.issue.title.clone(),
        service: event.issue.service.clone(),
        environment: event.issue.environment.clone(),
        count: event.issue.count,
    }
}

/// The intake thread: events into deliveries (or held for a digest), and
/// the digest when its window is over.
fn intake_loop(
    config: NotifyConfig,
    mut outbox: Outbox,
    receiver: &Receiver<Message>,
    shared: &Shared,
) {
    let mut storm = Storm::new(config.storm_threshold, config.storm_window);
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        let mut events = Vec::new();
        let stop = match receiver.recv_timeout(TICK) {
            Ok(Message::Event(event)) => {
                events.push(*event);
                false
            }
            Ok(Message::Stop) | Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        } || shared.stop.load(Ordering::SeqCst);
        // everything queued now, so a stop stores it first
        while let Ok(message) = receiver.try_recv() {
            if let Message::Event(event) = message {
                events.push(*event);
            }
        }
        let now = now_unix_nano();
        if !events.is_empty() {
            store_events(&config, &mut outbox, &mut storm, &events, now);
            wake(shared);
        }
        match outbox.oldest_held() {
            Ok(oldest) if storm.digest_due(now, oldest) => {
                let build = |held: &[HeldEvent]| {
                    let body = payload::digest_body(held, config.storm_window, &config).to_string();
                    config
                        .webhooks
                        .iter()
                        .map(|url| NewDelivery {
                            issue_id: None,
                            event: "digest".to_owned(),
                            url: url.clone(),
                            body: body.clone(),
                        })
                        .collect()
                };
                match outbox.flush_held(now, build) {
                    Ok(summed) => {
                        tracing::info!(events = summed, "alert storm: digest queued");
                        wake(shared);
                    }
                    Err(error) => tracing::error!(%error, "queueing a storm digest failed"),
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reading held notifications failed"),
        }
        if last_prune.is_none_or(|last| last.elapsed() >= PRUNE_EVERY) {
            if let Err(error) = outbox.prune(KEEP_FINISHED) {
                tracing::warn!(%error, "pruning old webhook deliveries failed");
            }
            last_prune = Some(std::time::Instant::now());
        }
        if stop {
            tracing::info!("notification intake stopped");
            return;
        }
    }
}

fn store_events(
    config: &NotifyConfig,
    outbox: &mut Outbox,
    storm: &mut Storm,
    events: &[IssueEvent],
    now: u64,
) {
    let mut holding = match outbox.oldest_held() {
        Ok(oldest) => oldest.is_some(),
        Err(error) => {
            tracing::warn!(%error, "reading held notifications failed");
            false
        }
    };
    let mut deliveries = Vec::new();
    let mut held = Vec::new();
    for event in events {
        match storm.observe(now, holding) {
            Decision::Send => {
                let body = payload::event_body(event, config).to_string();
                deliveries.extend(config.webhooks.iter().map(|url| NewDelivery {
                    issue_id: Some(event.issue.id.clone()),
                    event: event.kind.as_str().to_owned(),
                    url: url.clone(),
                    body: body.clone(),
                }));
            }
            Decision::Hold => {
                if !holding {
                    tracing::warn!(
                        threshold = config.storm_threshold,
                        window_s = config.storm_window.as_secs(),
                        "alert storm: new issues are held for one digest"
                    );
                }
                holding = true;
                held.push(held_event(event, now));
            }
        }
    }
    if let Err(error) = outbox.enqueue(&deliveries, now) {
        tracing::error!(%error, deliveries = deliveries.len(), "queueing webhook deliveries failed");
    }
    if let Err(error) = outbox.hold(&held) {
        tracing::error!(%error, events = held.len(), "holding storm events failed");
    }
}

fn wake(shared: &Shared) {
    for waker in &shared.wakers {
        // a full slot already says "look again"
        let _ = waker.try_send(());
    }
}

/// One webhook's sender: the due delivery that waited longest, one at a
/// time, then sleep until the next is due or a new one is queued.
fn send_loop(url: &str, outbox: &Outbox, wake: &Receiver<()>, shared: &Shared) {
    let shown = redact_url(url);
    let agent = agent();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = now_unix_nano();
        let wait = match outbox.next_due(url, now) {
            Ok(Some(due)) => {
                attempt(&agent, url, &shown, outbox, &due, shared);
                continue;
            }
            Ok(None) => match outbox.next_attempt(url) {
                Ok(Some(next)) => Duration::from_nanos(next.saturating_sub(now)).min(IDLE),
                Ok(None) => IDLE,
                Err(error) => {
                    tracing::warn!(%error, url = %shown, "reading webhook deliveries failed");
                    TICK
                }
            },
            Err(error) => {
                tracing::warn!(%error, url = %shown, "reading webhook deliveries failed");
                TICK
            }
        };
        if let Err(RecvTimeoutError::Disconnected) = wake.recv_timeout(wait) {
            return;
        }
    }
}

/// Deliveries that one unreachable-endpoint failure can count for.
const SHARED_FAILURE_LIMIT: usize = 10_000;

fn attempt(
    agent: &ureq::Agent,
    url: &str,
    shown: &str,
    outbox: &Outbox,
    due: &DueDelivery,
    shared_state: &Shared,
) {
    let (outcome, unreachable) = match post(agent, url, &due.body) {
        Ok(()) => (Ok(()), false),
        Err(Failure::Answered(status)) => (Err(format!("webhook answered {status}")), false),
        Err(Failure::Unreachable(error)) => (Err(error.replace(url, shown)), true),
    };
    let error = outcome.as_ref().err().cloned();
    let now = now_unix_nano();
    match outbox.record_attempt(due, outcome, now, &BACKOFF) {
        Ok(DeliveryStatus::Delivered) => {
            tracing::info!(url = %shown, delivery = due.id, attempts = due.attempts + 1, "webhook delivered");
        }
        Ok(status) => {
            if status == DeliveryStatus::Failed {
                shared_state.failed.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(url = %shown, delivery = due.id, attempts = due.attempts + 1, error = error.as_deref().unwrap_or_default(), will_retry = status == DeliveryStatus::Retrying, "webhook delivery failed");
        }
        Err(db_error) => {
            tracing::error!(error = %db_error, url = %shown, delivery = due.id, "recording a webhook attempt failed");
            // do not spin on a row that cannot be updated
            std::thread::sleep(TICK);
            return;
        }
    }
    // an endpoint that cannot be reached (refused, timed out) fails every
    // delivery due now: they back off together, so a dead endpoint costs
    // one attempt per round, not one per queued notification
    if unreachable && let Some(error) = error {
        let mut shared = 0usize;
        while shared < SHARED_FAILURE_LIMIT {
            let Ok(Some(other)) = outbox.next_due(url, now) else {
                break;
            };
            match outbox.record_attempt(&other, Err(error.clone()), now, &BACKOFF) {
                Ok(DeliveryStatus::Failed) => {
                    shared_state.failed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => break,
            }
            shared += 1;
        }
        if shared > 0 {
            tracing::warn!(url = %shown, deliveries = shared, "webhook unreachable: deliveries due now back off with it");
        }
    }
}

/// One agent per sender (keeps its connection alive between deliveries).
/// Redirects are not followed: a webhook answers, it does not send us on.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// Why an attempt failed.
enum Failure {
    /// No answer: refused, timed out, unresolvable, broken connection.
    Unreachable(String),
    /// The endpoint answered with this non-2xx status.
    Answered(u16),
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<(), Failure> {
    let response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map_err(|error| Failure::Unreachable(error.to_string()))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Failure::Answered(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_formats_parse() {
        assert_eq!(WebhookFormat::parse("Slack"), Some(WebhookFormat::Slack));
        assert_eq!(WebhookFormat::parse("json"), Some(WebhookFormat::Json));
        assert_eq!(WebhookFormat::parse("xml"), None);
    }

    /// A webhook url on a port nothing listens on.
    fn refused_url() -> String {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap();
        format!("http://{addr}/hook")
    }

    #[test]
    fn test_queued_events_are_stored_before_shutdown_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("errors.sqlite");
        let config = NotifyConfig {
            webhooks: vec![refused_url(), refused_url()],
            ..NotifyConfig::default()
        };
        let notifier = Notifier::start(config, &path).unwrap();
        for _ in 0..3 {
            notifier.notify(payload::tests::event(
                ashiato_errors::IssueEventKind::NewIssue,
            ));
        }
        notifier.shutdown();
        // three events, two webhooks: six deliveries, unfinished
        let outbox = Outbox::open(&path).unwrap();
        assert_eq!(outbox.backlog().unwrap(), (6, 0));
        let listed = notifier.deliveries();
        assert_eq!(listed.len(), 6);
        assert!(listed.iter().all(|delivery| delivery.url.ends_with("/…")));
    }

    #[test]
    fn test_a_full_queue_holds_events_in_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("errors.sqlite");
        let config = NotifyConfig {
            webhooks: vec![refused_url()],
            ..NotifyConfig::default()
        };
        let notifier = Notifier::start(config, &path).unwrap();
        // what `notify` does when the queue has no room
        notifier.overflow(&payload::tests::event(
            ashiato_errors::IssueEventKind::Regression,
        ));
        assert_eq!(notifier.shared.overflowed.load(Ordering::Relaxed), 1);
        let outbox = Outbox::open(&path).unwrap();
        assert_eq!(outbox.backlog().unwrap(), (0, 1));
        assert!(outbox.oldest_held().unwrap().is_some());
        notifier.shutdown();
    }

    #[test]
    fn test_a_silent_endpoint_costs_one_attempt_per_round() {
        // accepts connections, never answers
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            let mut open = Vec::new();
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                open.push(stream);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let config = NotifyConfig {
            webhooks: vec![format!("http://{addr}/hook")],
            ..NotifyConfig::default()
        };
        let notifier = Notifier::start(config, &dir.path().join("errors.sqlite")).unwrap();
        for _ in 0..3 {
            notifier.notify(payload::tests::event(
                ashiato_errors::IssueEventKind::NewIssue,
            ));
        }
        let deadline = std::time::Instant::now() + 4 * REQUEST_TIMEOUT;
        loop {
            let deliveries = notifier.deliveries();
            if deliveries.len() == 3 && deliveries.iter().all(|delivery| delivery.attempts >= 1) {
                assert!(
                    deliveries
                        .iter()
                        .all(|delivery| delivery.status == DeliveryStatus::Retrying),
                    "{deliveries:?}"
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{deliveries:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // one timed-out attempt failed all three (one per delivery would
        // be three connections; the next round may have begun, 1 s later)
        assert!(accepted.load(Ordering::SeqCst) <= 2);
        notifier.shutdown();
    }

    #[test]
    fn test_debug_output_redacts_webhooks() {
        let config = NotifyConfig {
            webhooks: vec!["https://hooks.slack.com/services/T0/B0/SECRET".into()],
            ..NotifyConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("https://hooks.slack.com/…"), "{text}");
    }
}

//! The error tracking options of `ashiato serve`: `--error-tracking on|off`,
//! `--webhook` (repeatable), `--webhook-format`, `--public-url`,
//! `--error-settle`, `--notify-storm-threshold`, `--notify-storm-window`,
//! their environment
//! variables and TOML keys, resolved like every other option (flag >
//! environment > file > default).

use std::time::Duration;

use ashiato_model::parse_duration_ns;
use ashiato_server::{
    DEFAULT_STORM_THRESHOLD, DEFAULT_STORM_WINDOW, ErrorsConfig, MAX_WEBHOOKS, NotifyConfig,
    WebhookFormat,
};

/// Longest settling window accepted: errors must show up within minutes.
const MAX_SETTLE: Duration = Duration::from_secs(600);

#[derive(Debug, Default, clap::Args)]
pub struct ErrorArgs {
    /// Track errors (issues, webhooks): on or off; off is for measuring
    /// what tracking costs, the issue API still shows what was counted
    /// [default: on]
    #[arg(long, env = "ASHIATO_ERROR_TRACKING", value_name = "ON|OFF", value_parser = parse_switch)]
    error_tracking: Option<bool>,

    /// Webhook notified once per new and once per regressed issue
    /// (repeatable; the environment variable takes a comma-separated list)
    #[arg(
        long = "webhook",
        env = "ASHIATO_WEBHOOK",
        value_name = "URL",
        value_delimiter = ','
    )]
    webhook: Vec<String>,

    /// Webhook payload: json or slack [default: json]
    #[arg(long, env = "ASHIATO_WEBHOOK_FORMAT", value_name = "FORMAT", value_parser = parse_format)]
    webhook_format: Option<WebhookFormat>,

    /// Base URL of the web UI, used for links in notifications
    #[arg(long, env = "ASHIATO_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// How long after a trace's last error span its errors are decided
    /// (spans arrive in several batches), e.g. 10s [default: 10s]
    #[arg(long, env = "ASHIATO_ERROR_SETTLE", value_name = "DUR", value_parser = parse_settle)]
    error_settle: Option<Duration>,

    /// Alert storms: more new issues and regressions than this within
    /// --notify-storm-window are sent as one digest per window [default: 10]
    #[arg(long, env = "ASHIATO_NOTIFY_STORM_THRESHOLD", value_name = "N", value_parser = parse_threshold)]
    notify_storm_threshold: Option<usize>,

    /// The alert-storm window, e.g. 5m [default: 5m]
    #[arg(long, env = "ASHIATO_NOTIFY_STORM_WINDOW", value_name = "DUR", value_parser = parse_window)]
    notify_storm_window: Option<Duration>,
}

/// The same settings from the TOML file.
#[derive(Clone, Copy)]
pub struct FileErrors<'a> {
    pub error_tracking: &'a Option<bool>,
    pub webhook: &'a Option<Vec<String>>,
    pub webhook_format: &'a Option<String>,
    pub public_url: &'a Option<String>,
    pub error_settle: &'a Option<String>,
    pub notify_storm_threshold: &'a Option<u64>,
    pub notify_storm_window: &'a Option<String>,
}

pub fn resolve(args: &ErrorArgs, file: FileErrors<'_>) -> anyhow::Result<ErrorsConfig> {
    let defaults = ErrorsConfig::default();
    let webhooks = if args.webhook.is_empty() {
        file.webhook.clone().unwrap_or_default()
    } else {
        args.webhook.clone()
    };
    if webhooks.len() > MAX_WEBHOOKS {
        anyhow::bail!(
            "{} webhooks configured: at most {MAX_WEBHOOKS} (each gets a sender thread)",
            webhooks.len()
        );
    }
    for url in &webhooks {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("invalid webhook {url:?}: expected an http:// or https:// url");
        }
    }
    let format = match (args.webhook_format, file.webhook_format) {
        (Some(format), _) => format,
        (None, Some(text)) => parse_format(text)
            .map_err(|reason| anyhow::anyhow!("invalid webhook_format in config file: {reason}"))?,
        (None, None) => WebhookFormat::default(),
    };
    let settle = match (args.error_settle, file.error_settle) {
        (Some(settle), _) => settle,
        (None, Some(text)) => parse_settle(text)
            .map_err(|reason| anyhow::anyhow!("invalid error_settle in config file: {reason}"))?,
        (None, None) => defaults.settle,
    };
    let storm_threshold = match (args.notify_storm_threshold, file.notify_storm_threshold) {
        (Some(threshold), _) => threshold,
        (None, Some(number)) => parse_threshold(&number.to_string()).map_err(|reason| {
            anyhow::anyhow!("invalid notify_storm_threshold in config file: {reason}")
        })?,
        (None, None) => DEFAULT_STORM_THRESHOLD,
    };
    let storm_window = match (args.notify_storm_window, file.notify_storm_window) {
        (Some(window), _) => window,
        (None, Some(text)) => parse_window(text).map_err(|reason| {
            anyhow::anyhow!("invalid notify_storm_window in config file: {reason}")
        })?,
        (None, None) => DEFAULT_STORM_WINDOW,
    };
    Ok(ErrorsConfig {
        enabled: args
            .error_tracking
            .or(*file.error_tracking)
            .unwrap_or(defaults.enabled),
        settle,
        notify: NotifyConfig {
            webhooks,
            format,
            public_url: args.public_url.clone().or_else(|| file.public_url.clone()),
            storm_threshold,
            storm_window,
        },
    })
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{text:?} is not on or off")),
    }
}

fn parse_format(text: &str) -> Result<WebhookFormat, String> {
    WebhookFormat::parse(text).ok_or_else(|| format!("{text:?} is not json or slack"))
}

fn parse_settle(text: &str) -> Result<Duration, String> {
    let nanos = parse_duration_ns(text).map_err(|error| error.to_string())?;
    let settle = Duration::from_nanos(nanos);
    if settle > MAX_SETTLE {
        return Err(format!("{text:?} is longer than the 10m maximum"));
    }
    Ok(settle)
}

/// Largest storm threshold: the notification queue holds 1,024 events.
const MAX_STORM_THRESHOLD: usize = 1_000;

fn parse_threshold(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(threshold) if (1..=MAX_STORM_THRESHOLD).contains(&threshold) => Ok(threshold),
        _ => Err(format!(
            "{text:?} is not a number from 1 to {MAX_STORM_THRESHOLD}"
        )),
    }
}

/// From one second to a day.
fn parse_window(text: &str) -> Result<Duration, String> {
    let nanos = parse_duration_ns(text).map_err(|error| error.to_string())?;
    let window = Duration::from_nanos(nanos);
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&window) {
        return Err(format!("{text:?} is not between 1s and 24h"));
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        errors: ErrorArgs,
    }

    fn args(flags: &[&str]) -> ErrorArgs {
        let mut argv = vec!["ashiato"];
        argv.extend_from_slice(flags);
        TestCli::try_parse_from(argv).unwrap().errors
    }

    const NONE: FileErrors<'static> = FileErrors {
        error_tracking: &None,
        webhook: &None,
        webhook_format: &None,
        public_url: &None,
        error_settle: &None,
        notify_storm_threshold: &None,
        notify_storm_window: &None,
    };

    #[test]
    fn test_defaults() {
        let config = resolve(&ErrorArgs::default(), NONE).unwrap();
        assert_eq!(config, ErrorsConfig::default());
        assert_eq!(config.settle, Duration::from_secs(10));
    }

    #[test]
    fn test_flags_beat_the_file() {
        let webhook = Some(vec!["http://file/hook".to_owned()]);
        let format = Some("json".to_owned());
        let settle = Some("5s".to_owned());
        let file = FileErrors {
            error_tracking: &Some(false),
            webhook: &webhook,
            webhook_format: &format,
            public_url: &None,
            error_settle: &settle,
            notify_storm_threshold: &Some(50),
            notify_storm_window: &Some("1h".to_owned()),
        };
        let flags = args(&[
            "--webhook",
            "http://a/1",
            "--webhook",
            "https://b/2",
            "--webhook-format",
            "slack",
            "--error-settle",
            "1s",
            "--public-url",
            "https://ashiato.example.com",
            "--notify-storm-threshold",
            "20",
        ]);
        let config = resolve(&flags, file).unwrap();
        assert!(!config.enabled, "the file turns tracking off");
        assert_eq!(config.notify.webhooks, ["http://a/1", "https://b/2"]);
        assert_eq!(config.notify.format, WebhookFormat::Slack);
        assert_eq!(config.settle, Duration::from_secs(1));
        assert_eq!(
            config.notify.public_url.as_deref(),
            Some("https://ashiato.example.com")
        );
        let from_file = resolve(&ErrorArgs::default(), file).unwrap();
        assert_eq!(from_file.notify.webhooks, ["http://file/hook"]);
        assert_eq!(from_file.settle, Duration::from_secs(5));
        // storm: the flag beats the file, the file beats the default
        assert_eq!(config.notify.storm_threshold, 20);
        assert_eq!(config.notify.storm_window, Duration::from_secs(3_600));
        assert_eq!(from_file.notify.storm_threshold, 50);
        let defaults = resolve(&ErrorArgs::default(), NONE).unwrap();
        assert_eq!(defaults.notify.storm_threshold, 10);
        assert_eq!(defaults.notify.storm_window, Duration::from_secs(300));
    }

    #[test]
    fn test_error_tracking_switch() {
        assert!(
            resolve(&args(&["--error-tracking", "on"]), NONE)
                .unwrap()
                .enabled
        );
        assert!(
            !resolve(&args(&["--error-tracking", "off"]), NONE)
                .unwrap()
                .enabled
        );
        let off = FileErrors {
            error_tracking: &Some(false),
            ..NONE
        };
        assert!(!resolve(&ErrorArgs::default(), off).unwrap().enabled);
        assert!(
            resolve(&args(&["--error-tracking", "on"]), off)
                .unwrap()
                .enabled
        );
    }

    #[test]
    fn test_bad_values() {
        assert!(TestCli::try_parse_from(["ashiato", "--webhook-format", "xml"]).is_err());
        assert!(TestCli::try_parse_from(["ashiato", "--error-settle", "2h"]).is_err());
        assert!(TestCli::try_parse_from(["ashiato", "--error-tracking", "maybe"]).is_err());
        assert!(resolve(&args(&["--webhook", "ftp://x"]), NONE).is_err());
        for bad in [
            ["--notify-storm-threshold", "0"],
            ["--notify-storm-threshold", "5000"],
            ["--notify-storm-window", "0s"],
            ["--notify-storm-window", "2d"],
        ] {
            assert!(
                TestCli::try_parse_from(["ashiato", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
        let many: Vec<String> = (0..=MAX_WEBHOOKS)
            .flat_map(|index| ["--webhook".to_owned(), format!("http://h/{index}")])
            .collect();
        let mut argv = vec!["ashiato".to_owned()];
        argv.extend(many);
        let parsed = TestCli::try_parse_from(argv).unwrap();
        assert!(resolve(&parsed.errors, NONE).is_err());
    }
}

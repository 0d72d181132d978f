//! The trace-agent `/info` document and the reply to trace posts.
//!
//! `/info` advertises exactly what ashiato implements: the v0.3/v0.4/v0.5
//! trace endpoints, stats (accepted and ignored) and the telemetry proxy.
//! `client_drop_p0s: false` keeps tracers from dropping unsampled traces
//! (ashiato wants every trace), and neither `/v0.7/config` (remote
//! configuration) nor `/v1.0/traces` is listed, so tracers neither poll for
//! configuration nor switch to a wire format ashiato does not decode.
//! `span_events: true` because native `span_events` are decoded.

/// Version reported as the agent's; tracers only gate features on it.
const AGENT_VERSION: &str = "7.70.0";

/// Endpoints ashiato serves on the Datadog listener.
pub const ENDPOINTS: &[&str] = &[
    "/v0.3/traces",
    "/v0.4/traces",
    "/v0.5/traces",
    "/v0.6/stats",
    "/telemetry/proxy/",
];

/// The `GET /info` body.
pub fn info_document() -> serde_json::Value {
    serde_json::json!({
        "version": AGENT_VERSION,
        "endpoints": ENDPOINTS,
        "client_drop_p0s": false,
        "span_meta_structs": false,
        "long_running_spans": false,
        "span_events": true,
        "feature_flags": [],
        "peer_tags": [],
        "config": {
            "default_env": "none",
            "statsd_port": 0,
        },
    })
}

/// The reply to a v0.4/v0.5 trace post: an empty rate table keeps the
/// tracers' defaults (keep everything at priority 1). Rates below 1 would
/// make tracers mark traces as rejected, which ashiato never wants.
pub const RATE_BY_SERVICE_REPLY: &str = r#"{"rate_by_service":{}}"#;

/// The reply to a v0.3 trace post (v0.3 clients expect text, not rates).
pub const V03_REPLY: &str = "OK\n";

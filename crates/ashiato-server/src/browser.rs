//! Defences against web pages the user visits while ashiato listens on
//! loopback (or a private network): a page cannot send credentials here, but
//! it can make the browser send requests.
//!
//! - Cross-site writes: a page may POST a "simple" request (`text/plain`,
//!   no preflight) to any address, and the intakes would store it. Every
//!   write method (anything but GET, HEAD, OPTIONS) on the HTTP and Datadog
//!   listeners is refused with 403 when the browser says it is cross-site:
//!   `Sec-Fetch-Site` other than `same-origin`/`none` (so `same-site`, an
//!   app on another localhost port, is refused too), or, from browsers that
//!   do not send it, an `Origin` whose host and port differ from `Host`
//!   (`Origin: null` included). Tracers, SDKs and log shippers send
//!   neither header, so they are unaffected. There is no CORS allowance.
//! - DNS rebinding: a page on `evil.example` whose name is re-pointed at
//!   127.0.0.1 becomes same-origin with ashiato and could read traces and
//!   change issues. Its requests carry `Host: evil.example`, so the UI/API
//!   listener answers only requests whose `Host` is an IP literal (what
//!   clients use without DNS), `localhost`, or a name given with
//!   `--allowed-host`. Not checked: `/healthz`, `/readyz` (load balancers
//!   use any name; they reveal nothing) and the Datadog logs intake routes
//!   (log shippers are configured with any hostname; a rebinding page
//!   could at worst add log records). The OTLP and Datadog agent listeners
//!   serve no reads and are not checked, so SDK ingest keeps working
//!   whatever `Host` it sends.
//! - The UI's responses carry a Content-Security-Policy (only its own
//!   scripts, styles and connections; no framing), `X-Frame-Options: DENY`,
//!   `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The UI's policy: its own assets and API only; CSSOM styles set from its
/// scripts are not covered by `style-src`, inline style attributes are.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths on the UI/API listener answered whatever the `Host` header says.
fn host_check_exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/api/v2/logs" | "/v1/input")
        || path.starts_with("/v1/input/")
}

/// Host names (besides IP literals and `localhost`) the UI/API listener
/// answers to, from `--allowed-host`; compared without the port and
/// case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Arc<Vec<String>>);

impl AllowedHosts {
    pub fn new(names: &[String]) -> AllowedHosts {
        AllowedHosts(Arc::new(
            names
                .iter()
                .map(|name| host_part(name.trim()).to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect(),
        ))
    }

    fn allows(&self, host: &str) -> bool {
        let name = host_part(host);
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self
                .0
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

/// The host of an authority (`name:port`, `[v6]:port`, `name`), without the port.
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        // more than one colon: a bare IPv6 literal, no port
        Some((host, _)) if !host.contains(':') => host,
        _ => authority,
    }
}

/// The request's authority: `Host`, or the URI's (HTTP/2 `:authority`).
fn request_authority(request: &Request) -> Option<String> {
    match request.headers().get(HOST) {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).trim().to_owned()),
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
    }
}

/// Why a write is refused as cross-site, or `None` when it is not.
fn cross_site(headers: &HeaderMap, authority: Option<&str>) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = String::from_utf8_lossy(site.as_bytes())
            .trim()
            .to_ascii_lowercase();
        return (site != "same-origin" && site != "none")
            .then(|| format!("Sec-Fetch-Site is {site}"));
    }
    let origin = headers.get(ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).trim().to_owned();
    let origin_authority = origin.split_once("://").map(|(_, rest)| rest);
    match (origin_authority, authority) {
        (Some(from), Some(to)) if from.eq_ignore_ascii_case(to) => None,
        _ => Some(format!("Origin {origin} is not this server")),
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// Refuses cross-site writes (see the module doc).
async fn refuse_cross_site_writes(request: Request, next: Next) -> Response {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if !reads.contains(request.method()) {
        let authority = request_authority(&request);
        if let Some(reason) = cross_site(request.headers(), authority.as_deref()) {
            tracing::warn!(
                method = %request.method(),
                path = request.uri().path(),
                reason,
                "cross-site request refused"
            );
            return refuse(
                StatusCode::FORBIDDEN,
                format!("cross-site request refused: {reason}\n"),
            );
        }
    }
    next.run(request).await
}

/// The Datadog agent listener: cross-site writes refused, nothing else.
pub fn guard_ingest(app: Router) -> Router {
    app.layer(axum::middleware::from_fn(refuse_cross_site_writes))
}

/// The UI/API listener: `Host` checked, cross-site writes refused, the
/// browser security headers on every answer.
pub fn guard_http(app: Router, allowed: AllowedHosts) -> Router {
    app.layer(axum::middleware::from_fn(refuse_cross_site_writes))
        .layer(axum::middleware::from_fn(move |request, next| {
            check_host(allowed.clone(), request, next)
        }))
        .layer(axum::middleware::map_response(security_headers))
}

async fn check_host(allowed: AllowedHosts, request: Request, next: Next) -> Response {
    if !host_check_exempt(request.uri().path())
        && let Some(authority) = request_authority(&request)
        && !allowed.allows(&authority)
    {
        tracing::warn!(
            host = authority,
            path = request.uri().path(),
            "request for an unknown host refused (see --allowed-host)"
        );
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "host {authority} is not served here: use an IP address or localhost, \
                 or start ashiato with --allowed-host {}\n",
                host_part(&authority)
            ),
        );
    }
    next.run(request).await
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ];
    for (name, value) in set {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_host_part_strips_ports() {
        let cases = [
            ("localhost:8800", "localhost"),
            ("localhost", "localhost"),
            ("[::1]:8800", "[::1]"),
            ("[::1]", "[::1]"),
            ("::1", "::1"),
            ("10.0.0.2:80", "10.0.0.2"),
        ];
        for (authority, host) in cases {
            assert_eq!(host_part(authority), host, "{authority}");
        }
    }

    #[test]
    fn test_allowed_hosts() {
        let allowed = AllowedHosts::new(&["Ashiato.internal:8800".to_owned()]);
        let cases = [
            ("127.0.0.1:8800", true),
            ("[::1]:8800", true),
            ("192.168.1.9", true),
            ("LOCALHOST:8800", true),
            ("ashiato.internal", true),
            ("ashiato.INTERNAL:9999", true),
            ("evil.example:8800", false),
            ("localhost.evil.example", false),
            ("127.0.0.1.nip.io", false),
        ];
        for (host, allows) in cases {
            assert_eq!(allowed.allows(host), allows, "{host}");
        }
    }

    #[test]
    fn test_cross_site_detection() {
        // (Sec-Fetch-Site, Origin, Host, refused)
        let cases = [
            (None, None, Some("127.0.0.1:8800"), false),
            (Some("same-origin"), None, Some("127.0.0.1:8800"), false),
            (Some("none"), None, Some("127.0.0.1:8800"), false),
            (Some("cross-site"), None, Some("127.0.0.1:8800"), true),
            (Some("same-site"), None, Some("127.0.0.1:8800"), true),
            (
                None,
                Some("http://127.0.0.1:8800"),
                Some("127.0.0.1:8800"),
                false,
            ),
            (
                None,
                Some("http://127.0.0.1:3000"),
                Some("127.0.0.1:8800"),
                true,
            ),
            (
                None,
                Some("https://evil.example"),
                Some("127.0.0.1:8800"),
                true,
            ),
            (None, Some("null"), Some("127.0.0.1:8800"), true),
        ];
        for (site, origin, host, refused) in cases {
            let mut headers = HeaderMap::new();
            if let Some(site) = site {
                headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            }
            if let Some(origin) = origin {
                headers.insert(ORIGIN, HeaderValue::from_static(origin));
            }
            assert_eq!(
                cross_site(&headers, host).is_some(),
                refused,
                "{site:?} {origin:?}"
            );
        }
    }
}

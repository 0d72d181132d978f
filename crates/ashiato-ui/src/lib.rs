//! The web UI: a single page application of hand-written JavaScript modules
//! and CSS, embedded in the binary with `include_bytes!` and served at `/`.
//!
//! The pages talk to `/api/v1` from the browser; nothing is rendered on the
//! server and there is no front-end build step. `router()` is meant to be the
//! fallback of the `--http` listener: `/api`, `/healthz` and `/readyz` keep
//! priority, `/assets/<file>` serves one embedded file (404 when unknown),
//! and a `GET` of one of the application's own routes (the list in
//! `assets/app.js`, mirrored by [`is_ui_route`]) answers the index page so
//! that shareable URLs such as `/traces/<id>?span=<id>` load the
//! application, which then routes on the client. Every other path is a plain
//! 404, so `/metrics`, `/favicon.ico` or a mistyped API path never look like
//! a successful answer to a scraper or a probe.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `assets/` the UI serves; the test below checks that
/// none on disk is forgotten.
static ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("tree.js", JS),
    asset!("diff.js", JS),
    asset!("charts.js", JS),
    asset!("page_traces.js", JS),
    asset!("page_trace.js", JS),
    asset!("page_compare.js", JS),
    asset!("page_services.js", JS),
    asset!("page_issues.js", JS),
    asset!("page_logs.js", JS),
];

const INDEX: &[u8] = include_bytes!("../assets/index.html");

/// The UI's routes; merge it last (as the fallback) into the HTTP listener.
pub fn router() -> Router {
    Router::new()
        .route("/assets/{name}", get(serve_asset))
        .fallback(spa_fallback)
}

fn with_type(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // small files, always revalidated: a new binary must never serve stale JS
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn serve_asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => with_type(asset.content_type, asset.bytes),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Any other GET is a client-side route: answer the index page.
async fn spa_fallback(method: Method, uri: Uri) -> Response {
    // other methods on unknown paths are plain 404s: a client that posts
    // OTLP to this listener by mistake must hear "not found" (the CLI's demo
    // turns that into a hint about the OTLP/HTTP listener)
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    if !is_ui_route(uri.path()) {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    with_type("text/html; charset=utf-8", INDEX)
}

/// Whether `path` is one of the client-side routes of `assets/app.js`
/// (its `ROUTES` table; keep both in step): `/`, `/traces`, `/traces/<hex
/// id>` (also `/trace/<id>`), `/compare`, `/services`, `/issues`,
/// `/issues/<id>` and `/logs`.
pub fn is_ui_route(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] | ["traces"] | ["traces", ""] => true,
        ["compare"] | ["services"] | ["issues"] | ["logs"] => true,
        ["trace" | "traces", id] => {
            (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
        }
        ["issues", id] => !id.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_path(method: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, body.to_vec())
    }

    #[tokio::test]
    async fn test_index_is_served_at_root_and_for_client_routes() {
        for path in [
            "/",
            "/traces",
            "/traces/0af7651916cd43dd8448eb211c80319c?span=b7ad6b7169203331",
            "/services?range=1h",
            "/issues/42",
            "/issues",
            "/traces/",
            "/trace/0af7651916cd43dd",
            "/compare?a=1&b=2",
            "/logs?q=%E6%B3%A8%E6%96%87",
        ] {
            let (status, content_type, body) = get_path("GET", path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(content_type, "text/html; charset=utf-8", "{path}");
            let text = String::from_utf8(body).unwrap();
            assert!(text.contains("<meta charset=\"utf-8\">"), "{path}");
            assert!(text.contains("/assets/app.js"), "{path}");
        }
    }

    #[tokio::test]
    async fn test_assets_have_their_content_types() {
        let cases = [
            ("/assets/app.js", JS),
            ("/assets/tree.js", JS),
            ("/assets/style.css", "text/css; charset=utf-8"),
            ("/assets/favicon.svg", "image/svg+xml"),
        ];
        for (path, expected) in cases {
            let (status, content_type, body) = get_path("GET", path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(content_type, expected, "{path}");
            assert!(!body.is_empty(), "{path}");
        }
    }

    #[tokio::test]
    async fn test_unknown_assets_and_api_paths_are_not_the_index() {
        for path in [
            "/assets/nope.js",
            "/assets/..%2FCargo.toml",
            "/api/v2/x",
            "/api",
            "/metrics",
            "/favicon.ico",
            "/robots.txt",
            "/v1/traces",
            "/traces/not-hex",
            "/trace/",
            "/issues/1/more",
            "/logs/",
            "/index.html",
        ] {
            let (status, _, _) = get_path("GET", path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, _, _) = get_path("POST", "/v1/traces").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn test_every_file_in_assets_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name == "index.html" || name.ends_with(".test.js") {
                continue;
            }
            assert!(
                ASSETS.iter().any(|asset| asset.name == name),
                "{name} is in assets/ but not embedded"
            );
        }
    }
}

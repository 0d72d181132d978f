//! Access control on every listener: scoped tokens, source-network
//! allow-lists, the per-source limit on failures, and the refusal to expose
//! an unprotected listener.
//!
//! Policy, decided per request before any routing (so a refusal never says
//! whether a path or resource exists):
//! - a request needs a scope: `ingest` on the OTLP and Datadog listeners
//!   and the logs intake of the HTTP listener, `read` for `GET`/`HEAD` under
//!   `/api`, `admin` for other methods there; `/healthz`, `/readyz` and the
//!   web UI's static files need none;
//! - a source address inside the listener's allow-list is let in as is
//!   (Datadog tracers send no credentials);
//! - otherwise, when tokens are enforced or the listener has an allow-list,
//!   the token (`authorization: Bearer …`, or `DD-API-KEY`) must exist (else
//!   401) and hold the scope (else 403);
//! - with neither tokens nor allow-lists everything is let in, as before
//!   access control existed (listeners then stay on loopback, see
//!   [`check_exposure`]).
//!
//! Tokens are enforced when a tokens file was named, the default one
//! (`<data_dir>/tokens`) exists or the config lists tokens; once the file
//! has appeared, enforcement stays on until restart, so deleting it never
//! opens the server. The file is polled for changes.

mod cidr;
mod limit;
pub mod session;
pub mod tokens;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use cidr::Cidr;
pub use tokens::{Scope, TokenRecord, TokenSet, TokensError};

use crate::ServerConfig;

/// Failed authentications one source may make per minute before 429.
pub const DEFAULT_FAILURE_LIMIT: u32 = 20;
/// How often the tokens file is checked for changes.
pub const DEFAULT_TOKENS_POLL: Duration = Duration::from_secs(2);

/// Source networks let in without a token, per listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowLists {
    pub otlp_grpc: Vec<Cidr>,
    pub otlp_http: Vec<Cidr>,
    pub http: Vec<Cidr>,
    pub datadog: Vec<Cidr>,
}

/// Access control settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// The tokens file; `None` means `<data_dir>/tokens`, used when it exists.
    pub tokens_file: Option<PathBuf>,
    /// Tokens listed in the config file.
    pub tokens: Vec<TokenRecord>,
    pub allow: AllowLists,
    /// Start on a non-loopback address without access control anyway.
    pub insecure_no_auth: bool,
    pub failure_limit: u32,
    pub tokens_poll: Duration,
}

impl Default for AccessConfig {
    fn default() -> AccessConfig {
        AccessConfig {
            tokens_file: None,
            tokens: Vec::new(),
            allow: AllowLists::default(),
            insecure_no_auth: false,
            failure_limit: DEFAULT_FAILURE_LIMIT,
            tokens_poll: DEFAULT_TOKENS_POLL,
        }
    }
}

/// The tokens file a server with this config reads.
pub fn tokens_path(config: &ServerConfig) -> PathBuf {
    config
        .access
        .tokens_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("tokens"))
}

/// Refuses a config exposing a listener beyond loopback without tokens or
/// an allow-list; with `--insecure-no-auth` it warns once instead.
pub fn check_exposure(config: &ServerConfig) -> anyhow::Result<()> {
    let access = &config.access;
    let tokens_file = tokens_path(config);
    let tokens = access.tokens_file.is_some() || !access.tokens.is_empty() || tokens_file.exists();
    let listeners = [
        ("otlp-grpc", config.otlp_grpc, &access.allow.otlp_grpc),
        ("otlp-http", config.otlp_http, &access.allow.otlp_http),
        ("http", Some(config.http), &access.allow.http),
        ("datadog", config.datadog, &access.allow.datadog),
    ];
    let exposed: Vec<String> = listeners
        .iter()
        .filter_map(|(name, addr, allow)| {
            let addr = (*addr)?;
            (!addr.ip().is_loopback() && !tokens && allow.is_empty())
                .then(|| format!("{name} {addr}"))
        })
        .collect();
    if exposed.is_empty() {
        return Ok(());
    }
    if access.insecure_no_auth {
        tracing::warn!(
            listeners = %exposed.join(", "),
            "--insecure-no-auth: listening beyond loopback without access control, anyone who reaches these ports can write and read all data"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {} without access control: anyone reaching it could write, read \
         and change all data. Create a token with `ashiato token create --scope ingest --name NAME` \
         (stored in {}; also --scope read, admin), or allow source networks per listener \
         (--allow-otlp-grpc, --allow-otlp-http, --allow-http, --allow-datadog CIDR), or pass \
         --insecure-no-auth to run open",
        exposed.join(", "),
        tokens_file.display()
    )
}

/// The state shared by every listener's gate.
#[derive(Debug)]
pub struct Access {
    tokens_file: PathBuf,
    config_tokens: Vec<TokenRecord>,
    tokens: RwLock<Arc<TokenSet>>,
    enforced: AtomicBool,
    limiter: limit::FailureLimiter,
    allow: AllowLists,
    sessions: session::Sessions,
    /// Session cookies get `Secure` when the listeners speak TLS.
    secure_cookies: bool,
}

impl Access {
    /// Loads the tokens (a broken tokens file stops the start: better than
    /// running with fewer tokens than the operator thinks).
    pub fn load(config: &ServerConfig) -> anyhow::Result<Arc<Access>> {
        let access = &config.access;
        let tokens_file = tokens_path(config);
        let from_file = tokens::read_file(&tokens_file)
            .map_err(|error| anyhow::anyhow!("tokens file {}: {error}", tokens_file.display()))?;
        let enforced =
            access.tokens_file.is_some() || !access.tokens.is_empty() || tokens_file.exists();
        let mut records = access.tokens.clone();
        records.extend(from_file);
        let shared = Access {
            tokens_file,
            config_tokens: access.tokens.clone(),
            tokens: RwLock::new(Arc::new(TokenSet::new(records))),
            enforced: AtomicBool::new(enforced),
            limiter: limit::FailureLimiter::new(access.failure_limit.max(1)),
            allow: access.allow.clone(),
            sessions: session::Sessions::default(),
            secure_cookies: config.tls.is_some(),
        };
        if enforced {
            tracing::info!(
                tokens = shared.current().len(),
                file = %shared.tokens_file.display(),
                "token authentication enforced"
            );
        }
        Ok(Arc::new(shared))
    }

    /// The session of this cookie id, while its token still exists and
    /// still grants the session's scope.
    fn session(&self, id: &str) -> Option<session::Session> {
        let session = self.sessions.get(id)?;
        let tokens = self.current();
        let record = tokens.by_hash(&session.token_sha256)?;
        (record.name == session.name && record.grants(session.scope)).then_some(session)
    }

    fn current(&self) -> Arc<TokenSet> {
        self.tokens
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Re-reads the tokens file; a broken file keeps the last good set.
    fn reload(&self) {
        match tokens::read_file(&self.tokens_file) {
            Ok(from_file) => {
                if self.tokens_file.exists() {
                    self.enforced.store(true, Ordering::Release);
                }
                let mut records = self.config_tokens.clone();
                records.extend(from_file);
                let count = records.len();
                *self
                    .tokens
                    .write()
                    .unwrap_or_else(|poison| poison.into_inner()) =
                    Arc::new(TokenSet::new(records));
                tracing::info!(tokens = count, file = %self.tokens_file.display(), "tokens reloaded");
            }
            Err(error) => tracing::warn!(
                file = %self.tokens_file.display(),
                error = %error,
                "tokens file unreadable, keeping the previous tokens"
            ),
        }
    }

    /// Polls the tokens file's modification time and length, reloading on
    /// a change, until the returned task is aborted.
    pub fn watch(self: &Arc<Access>, every: Duration) -> tokio::task::JoinHandle<()> {
        let access = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen = tokens::file_stamp(&access.tokens_file);
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let stamp = tokens::file_stamp(&access.tokens_file);
                if stamp != seen {
                    seen = stamp;
                    let reload_access = Arc::clone(&access);
                    // a small file, but still disk work: off the async threads
                    let _ = tokio::task::spawn_blocking(move || reload_access.reload()).await;
                }
            }
        })
    }

    /// The gate of one listener.
    pub fn gate(self: &Arc<Access>, listener: Listener) -> Gate {
        let allow = match listener {
            Listener::OtlpGrpc => &self.allow.otlp_grpc,
            Listener::OtlpHttp => &self.allow.otlp_http,
            Listener::Http => &self.allow.http,
            Listener::Datadog => &self.allow.datadog,
        };
        Gate {
            access: Arc::clone(self),
            allow: Arc::new(allow.clone()),
            listener,
        }
    }
}

/// Which listener a gate guards: decides the scope a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    OtlpGrpc,
    OtlpHttp,
    Http,
    Datadog,
}

/// Who was let in, for logs and issue changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    Token(String),
    Network(IpAddr),
}

impl Principal {
    /// The name recorded on changes (`None` when nobody authenticated).
    pub fn actor(&self) -> Option<String> {
        match self {
            Principal::Anonymous => None,
            Principal::Token(name) => Some(name.clone()),
            Principal::Network(address) => Some(format!("network {address}")),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No token, or one that is not known: 401.
    Unauthenticated,
    /// A known token without the scope: 403.
    MissingScope(Scope),
    /// The source is outside the listener's allow-list and sent no token: 403.
    SourceNotAllowed,
    /// Too many failures from this source: 429.
    RateLimited(Duration),
}

impl Denial {
    fn message(&self) -> String {
        match self {
            Denial::Unauthenticated => {
                "missing or unknown token: send `authorization: Bearer <token>` \
                (create one with `ashiato token create`)"
                    .to_owned()
            }
            Denial::MissingScope(scope) => format!("the token lacks the {scope} scope"),
            Denial::SourceNotAllowed => {
                "this source address is not allowed on this listener; send a token".to_owned()
            }
            Denial::RateLimited(_) => {
                "too many failed authentications from this address, retry later".to_owned()
            }
        }
    }

    fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Denial::RateLimited(wait) => Some(wait.as_secs().max(1)),
            _ => None,
        }
    }
}

/// One listener's access check.
#[derive(Debug, Clone)]
pub struct Gate {
    access: Arc<Access>,
    allow: Arc<Vec<Cidr>>,
    listener: Listener,
}

impl Gate {
    /// The scope a request needs on this listener (`None`: public).
    pub fn required_scope(&self, method: &Method, path: &str) -> Option<Scope> {
        match self.listener {
            Listener::OtlpGrpc | Listener::OtlpHttp | Listener::Datadog => Some(Scope::Ingest),
            Listener::Http => {
                if path == "/api/v2/logs" || path == "/v1/input" || path.starts_with("/v1/input/") {
                    Some(Scope::Ingest)
                } else if path == "/api" || path.starts_with("/api/") {
                    if method == Method::GET || method == Method::HEAD {
                        Some(Scope::Read)
                    } else {
                        Some(Scope::Admin)
                    }
                } else {
                    // health probes and the UI's static files carry no data
                    None
                }
            }
        }
    }

    /// Lets a request in or says why not.
    pub fn decide(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        required: Option<Scope>,
    ) -> Result<Principal, Denial> {
        let Some(required) = required else {
            return Ok(Principal::Anonymous);
        };
        let enforced = self.access.enforced.load(Ordering::Acquire);
        if !enforced && self.allow.is_empty() {
            return Ok(Principal::Anonymous);
        }
        if let Some(peer) = peer {
            if self.allow.iter().any(|network| network.contains(peer)) {
                return Ok(Principal::Network(peer));
            }
            if let Some(wait) = self.access.limiter.blocked(peer) {
                return Err(Denial::RateLimited(wait));
            }
        }
        let result = match presented_token(headers) {
            None if !enforced => Err(Denial::SourceNotAllowed),
            None => Err(Denial::Unauthenticated),
            Some(token) => match self.access.current().find(token) {
                Some(record) if record.grants(required) => {
                    Ok(Principal::Token(record.name.clone()))
                }
                Some(_) => Err(Denial::MissingScope(required)),
                None => Err(Denial::Unauthenticated),
            },
        };
        if let (Err(denial), Some(peer)) = (&result, peer) {
            self.access.limiter.record_failure(peer);
            tracing::warn!(
                listener = ?self.listener,
                peer = %peer,
                reason = %denial.message(),
                "request refused"
            );
        }
        result
    }
}

/// The token of a request: `authorization: Bearer X` (what OTLP SDKs send
/// from `OTEL_EXPORTER_OTLP_HEADERS`, on HTTP and as gRPC metadata), or
/// `DD-API-KEY: X` (Datadog agents and log shippers).
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|token| !token.is_empty());
    }
    headers
        .get("dd-api-key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// The source address of a connection, as the HTTP-based listeners record
/// it (`into_make_service_with_connect_info::<PeerAddr>`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, crate::conn_limits::LimitedListener>,
    > for PeerAddr
{
    fn connect_info(
        stream: axum::serve::IncomingStream<'_, crate::conn_limits::LimitedListener>,
    ) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}

/// axum middleware for the HTTP-based listeners.
pub async fn http_middleware(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|info| info.0.0.ip());
    if gate.listener == Listener::Http {
        if request.uri().path() == SESSION_PATH {
            return session_endpoint(&gate, peer, request).await;
        }
        match session_access(&gate, &mut request) {
            Some(Ok(())) => return next.run(request).await,
            Some(Err(response)) => return response,
            None => {}
        }
    }
    let required = gate.required_scope(request.method(), request.uri().path());
    match gate.decide(peer, request.headers(), required) {
        Ok(principal) => {
            if let Some(actor) = principal.actor() {
                request.extensions_mut().insert(ashiato_api::Actor(actor));
            }
            next.run(request).await
        }
        Err(denial) => {
            let is_api = request.uri().path().starts_with("/api/");
            denial_response(&denial, is_api)
        }
    }
}

/// Where the web UI logs in and out.
pub const SESSION_PATH: &str = "/api/v1/session";

/// Lets a request with a valid session cookie (and no token) in with the
/// session's scope: `Some(Ok)` lets it in (carrying the actor),
/// `Some(Err)` refuses it, `None` leaves it to the token check. An unknown or expired cookie is ignored, so the
/// request meets the usual token check (and its 401, which the UI answers
/// with the login form).
fn session_access(gate: &Gate, request: &mut Request) -> Option<Result<(), Response>> {
    let required = gate.required_scope(request.method(), request.uri().path())?;
    if !gate.access.enforced.load(Ordering::Acquire) || presented_token(request.headers()).is_some()
    {
        return None;
    }
    let id = session::cookie_id(request.headers())?;
    let session = gate.access.session(id)?;
    let is_api = request.uri().path().starts_with("/api/");
    if !session.scope_grants(required) {
        return Some(Err(denial_response(
            &Denial::MissingScope(required),
            is_api,
        )));
    }
    if !session::csrf_ok(request.method(), request.headers()) {
        tracing::warn!(
            actor = %session.name,
            path = %request.uri().path(),
            "cookie-authenticated write without the csrf header refused"
        );
        return Some(Err(session::json_answer(
            StatusCode::FORBIDDEN,
            serde_json::json!({ "error": "a write with the session cookie needs the `x-ashiato-csrf` header" }),
            None,
        )));
    }
    request
        .extensions_mut()
        .insert(ashiato_api::Actor(session.name.clone()));
    Some(Ok(()))
}

/// `GET`, `POST` and `DELETE` on [`SESSION_PATH`].
async fn session_endpoint(gate: &Gate, peer: Option<IpAddr>, request: Request) -> Response {
    let access = &gate.access;
    let enforced = access.enforced.load(Ordering::Acquire);
    let secure = access.secure_cookies;
    let method = request.method().clone();
    if method != Method::GET && !session::csrf_ok(&method, request.headers()) {
        return session::json_answer(
            StatusCode::FORBIDDEN,
            serde_json::json!({ "error": "this request needs the `x-ashiato-csrf` header" }),
            None,
        );
    }
    let current = session::cookie_id(request.headers())
        .and_then(|id| access.session(id).map(|session| (id.to_owned(), session)));
    if method == Method::GET || method == Method::HEAD {
        let body = match &current {
            Some((_, session)) => serde_json::json!({
                "auth": enforced,
                "logged_in": true,
                "name": session.name,
                "scope": session.scope.as_str(),
            }),
            None => serde_json::json!({ "auth": enforced, "logged_in": false }),
        };
        return session::json_answer(StatusCode::OK, body, None);
    }
    if method == Method::DELETE {
        if let Some((id, session)) = &current {
            access.sessions.close(id);
            tracing::info!(actor = %session.name, "web session closed");
        }
        return session::json_answer(
            StatusCode::OK,
            serde_json::json!({ "auth": enforced, "logged_in": false }),
            Some(session::clear_cookie(secure)),
        );
    }
    if method != Method::POST {
        return session::json_answer(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "use GET, POST or DELETE" }),
            None,
        );
    }
    if !enforced {
        return session::json_answer(
            StatusCode::CONFLICT,
            serde_json::json!({ "error": "no tokens are configured: there is nothing to log in to" }),
            None,
        );
    }
    if let Some(wait) = peer.and_then(|peer| access.limiter.blocked(peer)) {
        return denial_response(&Denial::RateLimited(wait), true);
    }
    let body = match axum::body::to_bytes(request.into_body(), session::MAX_LOGIN_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return session::json_answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({ "error": "the login body is one token in JSON" }),
                None,
            );
        }
    };
    #[derive(serde::Deserialize)]
    struct Login {
        token: String,
    }
    let Ok(login) = serde_json::from_slice::<Login>(&body) else {
        return session::json_answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "expected {\"token\": \"ashiato_...\"}" }),
            None,
        );
    };
    let tokens = access.current();
    let granted = tokens.find(login.token.trim()).map(|record| {
        let scope = if record.grants(Scope::Admin) {
            Some(Scope::Admin)
        } else if record.grants(Scope::Read) {
            Some(Scope::Read)
        } else {
            None
        };
        (record.name.clone(), scope, record.sha256)
    });
    let (name, scope, sha256) = match granted {
        Some((name, Some(scope), sha256)) => (name, scope, sha256),
        Some((_, None, _)) | None => {
            let denial = if granted.is_some() {
                Denial::MissingScope(Scope::Read)
            } else {
                Denial::Unauthenticated
            };
            if let Some(peer) = peer {
                access.limiter.record_failure(peer);
                tracing::warn!(peer = %peer, reason = %denial.message(), "web login refused");
            }
            return denial_response(&denial, true);
        }
    };
    match access.sessions.open(name.clone(), scope, sha256) {
        Ok(id) => {
            tracing::info!(actor = %name, scope = %scope.as_str(), "web session opened");
            session::json_answer(
                StatusCode::OK,
                serde_json::json!({
                    "auth": true,
                    "logged_in": true,
                    "name": name,
                    "scope": scope.as_str(),
                }),
                Some(session::set_cookie(&id, secure)),
            )
        }
        Err(error) => {
            tracing::error!(error = %error, "web session not opened");
            session::json_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": "no session could be opened" }),
                None,
            )
        }
    }
}

fn denial_response(denial: &Denial, json: bool) -> Response {
    let status = match denial {
        Denial::Unauthenticated => StatusCode::UNAUTHORIZED,
        Denial::MissingScope(_) | Denial::SourceNotAllowed => StatusCode::FORBIDDEN,
        Denial::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
    };
    let message = denial.message();
    let mut response = if json {
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    } else {
        (
            status,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response()
    };
    if *denial == Denial::Unauthenticated {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"ashiato\""),
        );
    }
    if let Some(seconds) = denial.retry_after_seconds() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A tower layer putting a [`Gate`] in front of the gRPC server; refusals
/// are gRPC statuses (`UNAUTHENTICATED`, `PERMISSION_DENIED`,
/// `RESOURCE_EXHAUSTED` with `retry-after`).
#[derive(Clone)]
pub struct GrpcGateLayer(pub Gate);

impl<S> tower::Layer<S> for GrpcGateLayer {
    type Service = GrpcGate<S>;

    fn layer(&self, inner: S) -> GrpcGate<S> {
        GrpcGate {
            gate: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct GrpcGate<S> {
    gate: Gate,
    inner: S,
}

impl<S, B, R> tower::Service<axum::http::Request<B>> for GrpcGate<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = axum::http::Response<R>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr)
            .map(|addr| addr.ip());
        let required = self
            .gate
            .required_scope(request.method(), request.uri().path());
        match self.gate.decide(peer, request.headers(), required) {
            Ok(_) => Box::pin(self.inner.call(request)),
            Err(denial) => {
                let message = denial.message();
                let status = match &denial {
                    Denial::Unauthenticated => tonic::Status::unauthenticated(message),
                    Denial::MissingScope(_) | Denial::SourceNotAllowed => {
                        tonic::Status::permission_denied(message)
                    }
                    Denial::RateLimited(_) => tonic::Status::resource_exhausted(message),
                };
                let mut response = status.into_http::<R>();
                if let Some(seconds) = denial.retry_after_seconds() {
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(seconds));
                }
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests;

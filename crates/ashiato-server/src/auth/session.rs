//! Web UI sessions: `POST /api/v1/session` trades a `read` or `admin` token
//! for an HttpOnly, SameSite=Strict cookie so the browser never keeps the
//! token in script-readable storage; `GET` says whether one is open and
//! whether auth is on; `DELETE` ends it.
//!
//! Invariants:
//! - the session id is 256 bits of OS randomness; only its SHA-256 is kept
//!   (in memory: a restart logs everyone out);
//! - a session is valid only while the token it was opened with still
//!   exists with the scope it had (revoking a token ends its sessions);
//! - a cookie-authenticated request that is not `GET`/`HEAD` must carry
//!   `X-Ashiato-CSRF` (a cross-site form cannot set headers), else 403;
//!   the session endpoints' own writes need it too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::tokens::{Scope, hash_token};

/// The cookie carrying the session id.
pub const COOKIE_NAME: &str = "ashiato_session";
/// The header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-ashiato-csrf";
/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Open sessions kept at most; past it the one expiring first is dropped,
/// so repeated logins cannot grow memory without bound.
const MAX_SESSIONS: usize = 10_000;
/// The login body is one token in JSON: anything bigger is not a login.
pub const MAX_LOGIN_BODY: usize = 4096;

/// An open session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token's name (recorded as the author of changes).
    pub name: String,
    /// `read` or `admin`.
    pub scope: Scope,
    /// The token's hash, to check it still exists.
    pub token_sha256: [u8; 32],
    expires: Instant,
}

impl Session {
    /// Whether this session may make a request needing `required` (an
    /// admin session also reads; no session ever ingests).
    pub fn scope_grants(&self, required: Scope) -> bool {
        self.scope == required || (self.scope == Scope::Admin && required == Scope::Read)
    }
}

/// The open sessions, keyed by the SHA-256 of their id.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Opens a session; returns its id (for the cookie only).
    pub fn open(
        &self,
        name: String,
        scope: Scope,
        token_sha256: [u8; 32],
    ) -> Result<String, super::TokensError> {
        // same shape and source of randomness as a token
        let id = super::tokens::generate_token()?;
        let now = Instant::now();
        let mut open = self.lock();
        open.retain(|_, session| session.expires > now);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(key, _)| *key)
        {
            open.remove(&oldest);
        }
        open.insert(
            hash_token(&id),
            Session {
                name,
                scope,
                token_sha256,
                expires: now + SESSION_TTL,
            },
        );
        Ok(id)
    }

    /// The unexpired session of this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = hash_token(id);
        let mut open = self.lock();
        match open.get(&key) {
            Some(session) if session.expires > Instant::now() => Some(session.clone()),
            Some(_) => {
                open.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of this id (if any).
    pub fn close(&self, id: &str) {
        self.lock().remove(&hash_token(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The session id in the request's cookies, if any.
pub fn cookie_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == COOKIE_NAME)
                .then(|| value.trim())
                .filter(|value| !value.is_empty())
        })
}

/// Whether a cookie-authenticated request may go on: reads always, writes
/// only with the CSRF header.
pub fn csrf_ok(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET || method == Method::HEAD || headers.contains_key(CSRF_HEADER)
}

/// The `Set-Cookie` opening a session.
pub fn set_cookie(id: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    // the id is hex and the rest fixed ASCII, so this never fails
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` ending a session in the browser.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "ashiato_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure",
        )
    } else {
        HeaderValue::from_static("ashiato_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }
}

/// A JSON answer with an optional `Set-Cookie`.
pub fn json_answer(
    status: StatusCode,
    body: serde_json::Value,
    cookie: Option<HeaderValue>,
) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cookie_id_parsing() {
        // (Cookie header values, expected id)
        let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
            (vec![], None),
            (vec!["ashiato_session=abc"], Some("abc")),
            (vec!["theme=dark; ashiato_session=abc; x=y"], Some("abc")),
            (vec!["theme=dark", "ashiato_session=abc"], Some("abc")),
            (vec!["ashiato_session="], None),
            (vec!["other_ashiato_session=abc"], None),
        ];
        for (values, expected) in cases {
            let mut headers = HeaderMap::new();
            for value in &values {
                headers.append(COOKIE, HeaderValue::from_str(value).unwrap());
            }
            assert_eq!(cookie_id(&headers), expected, "{values:?}");
        }
    }

    #[test]
    fn test_sessions_open_get_close() {
        let sessions = Sessions::default();
        let id = sessions.open("ci".into(), Scope::Read, [7; 32]).unwrap();
        assert!(id.starts_with("ashiato_") && id.len() == 8 + 64, "{id}");
        let session = sessions.get(&id).unwrap();
        assert_eq!((session.name.as_str(), session.scope), ("ci", Scope::Read));
        assert!(sessions.get("ashiato_nope").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn test_csrf_rule() {
        let mut with = HeaderMap::new();
        with.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        let without = HeaderMap::new();
        for (method, headers, ok) in [
            (Method::GET, &without, true),
            (Method::HEAD, &without, true),
            (Method::PATCH, &without, false),
            (Method::POST, &without, false),
            (Method::DELETE, &without, false),
            (Method::PATCH, &with, true),
        ] {
            assert_eq!(csrf_ok(&method, headers), ok, "{method}");
        }
    }
}

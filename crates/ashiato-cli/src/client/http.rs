//! HTTP plumbing shared by the client commands and the demo: a blocking
//! `ureq` agent, base-URL handling, and error messages that say what went
//! wrong in a user's terms (server down, server said no, server said nonsense).

use std::time::Duration;

use serde_json::Value;

/// Biggest API answer read into memory; a trace with a hundred thousand
/// spans is well below it, a misbehaving server is stopped by it.
const MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;

/// How much of a non-JSON error body is quoted back to the user.
const MAX_QUOTED_BODY_CHARS: usize = 300;

/// A server base URL plus an agent configured to report HTTP statuses as
/// answers, not transport errors.
pub struct Api {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl Api {
    pub fn new(server: &str) -> Api {
        Api {
            base: normalise_base(server),
            agent: agent(),
            token: None,
        }
    }

    /// Sends `authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: Option<&str>) -> Api {
        self.token = token.map(str::to_owned);
        self
    }

    /// GETs `path` with query parameters and returns the JSON body of a 2xx
    /// answer; anything else becomes an error that names the server.
    pub fn get_json(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .agent
            .get(&url)
            .query_pairs(query.iter().map(|(key, value)| (*key, value.as_str())));
        if let Some(token) = &self.token {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let mut response = request
            .call()
            .map_err(|error| unreachable_error(&self.base, &error))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|error| anyhow::anyhow!("reading the answer of {url} failed: {error}"))?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, &body));
        }
        serde_json::from_str(&body).map_err(|error| {
            anyhow::anyhow!(
                "unexpected answer from {url}: not JSON ({error}): {}",
                quote(&body)
            )
        })
    }
}

/// A blocking agent with bounded waits: a hung server must not hang the CLI.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Accepts `host:port` and trailing slashes, the two things people type.
pub fn normalise_base(server: &str) -> String {
    let trimmed = server.trim().trim_end_matches('/');
    if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    }
}

/// The message for a request that got no HTTP answer at all.
pub fn unreachable_error(base: &str, error: &ureq::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach ashiato at {base} ({}): is 'ashiato serve' running?",
        reason(error)
    )
}

fn reason(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
            std::io::ErrorKind::TimedOut => "timed out".to_owned(),
            _ => io.to_string(),
        },
        ureq::Error::ConnectionFailed => "connection failed".to_owned(),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::Timeout(_) => "timed out".to_owned(),
        other => other.to_string(),
    }
}

/// A non-2xx answer: the server's `{"error": ...}` message when it sent
/// one, else the start of whatever it sent.
pub fn status_error(status: u16, body: &str) -> anyhow::Error {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|json| {
            // ashiato's API says {"error"}; a google.rpc.Status in JSON says {"message"}
            let message = json.get("error").or_else(|| json.get("message"));
            message.and_then(Value::as_str).map(str::to_owned)
        })
        .unwrap_or_else(|| quote(body));
    if message.is_empty() {
        anyhow::anyhow!("server answered {status}")
    } else {
        anyhow::anyhow!("server answered {status}: {message}")
    }
}

fn quote(body: &str) -> String {
    let trimmed = body.trim();
    let mut quoted: String = trimmed.chars().take(MAX_QUOTED_BODY_CHARS).collect();
    if quoted.len() < trimmed.len() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_base_url_forms() {
        assert_eq!(
            normalise_base("http://127.0.0.1:8800/"),
            "http://127.0.0.1:8800"
        );
        assert_eq!(normalise_base("localhost:8800"), "http://localhost:8800");
        assert_eq!(normalise_base(" https://a.example "), "https://a.example");
    }

    #[test]
    fn test_status_error_prefers_server_message() {
        let error = status_error(404, r#"{"error":"trace not found"}"#);
        assert_eq!(error.to_string(), "server answered 404: trace not found");
        let error = status_error(502, "<html>bad gateway</html>");
        assert_eq!(
            error.to_string(),
            "server answered 502: <html>bad gateway</html>"
        );
        assert_eq!(status_error(500, "").to_string(), "server answered 500");
    }

    #[test]
    fn test_unreachable_message() {
        let refused = ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(
            unreachable_error("http://127.0.0.1:8800", &refused).to_string(),
            "cannot reach ashiato at http://127.0.0.1:8800 (connection refused): \
             is 'ashiato serve' running?"
        );
    }
}

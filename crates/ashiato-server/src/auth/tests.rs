//! The access policy, decided without sockets: which scope each request
//! needs, and what each kind of credential gets.

use super::*;

const INGEST: &str = "ashiato_ingest_secret";
const READ: &str = "ashiato_read_secret";
const ADMIN: &str = "ashiato_admin_secret";

fn config(dir: &std::path::Path, tokens: bool, allow_datadog: &[&str]) -> ServerConfig {
    let mut config = ServerConfig::ephemeral(dir);
    if tokens {
        config.access.tokens = [
            ("payments", "ingest", INGEST),
            ("ci", "read", READ),
            ("ops", "admin", ADMIN),
        ]
        .iter()
        .map(|(name, scope, secret)| {
            tokens::record(name, &[(*scope).to_owned()], &tokens::hash_hex(secret)).unwrap()
        })
        .collect();
    }
    config.access.allow.datadog = allow_datadog
        .iter()
        .map(|text| Cidr::parse(text).unwrap())
        .collect();
    config.access.failure_limit = 5;
    config
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn test_required_scopes_per_listener_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::load(&config(dir.path(), true, &[])).unwrap();
    let cases = [
        (
            Listener::OtlpGrpc,
            Method::POST,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Some(Scope::Ingest),
        ),
        (
            Listener::OtlpHttp,
            Method::POST,
            "/v1/traces",
            Some(Scope::Ingest),
        ),
        (Listener::Datadog, Method::GET, "/info", Some(Scope::Ingest)),
        (
            Listener::Datadog,
            Method::PUT,
            "/v0.4/traces",
            Some(Scope::Ingest),
        ),
        (
            Listener::Http,
            Method::POST,
            "/api/v2/logs",
            Some(Scope::Ingest),
        ),
        (
            Listener::Http,
            Method::POST,
            "/v1/input/key",
            Some(Scope::Ingest),
        ),
        (
            Listener::Http,
            Method::GET,
            "/api/v1/traces",
            Some(Scope::Read),
        ),
        (
            Listener::Http,
            Method::GET,
            "/api/v1/no-such-path",
            Some(Scope::Read),
        ),
        (
            Listener::Http,
            Method::PATCH,
            "/api/v1/issues/abc",
            Some(Scope::Admin),
        ),
        (
            Listener::Http,
            Method::DELETE,
            "/api/v1/traces",
            Some(Scope::Admin),
        ),
        (Listener::Http, Method::GET, "/healthz", None),
        (Listener::Http, Method::GET, "/readyz", None),
        (Listener::Http, Method::GET, "/", None),
        (Listener::Http, Method::GET, "/app.js", None),
    ];
    for (listener, method, path, expected) in cases {
        assert_eq!(
            access.gate(listener).required_scope(&method, path),
            expected,
            "{listener:?} {method} {path}"
        );
    }
}

#[test]
fn test_tokens_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::load(&config(dir.path(), true, &[])).unwrap();
    let gate = access.gate(Listener::Http);
    let peer = Some("192.0.2.1".parse().unwrap());
    let bearer = |token: &str| format!("Bearer {token}");
    let cases: Vec<(HeaderMap, Scope, Result<Principal, Denial>)> = vec![
        (headers(&[]), Scope::Read, Err(Denial::Unauthenticated)),
        (
            headers(&[("authorization", "Bearer nope")]),
            Scope::Read,
            Err(Denial::Unauthenticated),
        ),
        (
            headers(&[("authorization", &format!("Basic {READ}"))]),
            Scope::Read,
            Err(Denial::Unauthenticated),
        ),
        (
            headers(&[("authorization", &bearer(READ))]),
            Scope::Read,
            Ok(Principal::Token("ci".into())),
        ),
        (
            headers(&[("authorization", &format!("bearer  {READ}"))]),
            Scope::Read,
            Ok(Principal::Token("ci".into())),
        ),
        (
            headers(&[("authorization", &bearer(READ))]),
            Scope::Admin,
            Err(Denial::MissingScope(Scope::Admin)),
        ),
        (
            headers(&[("authorization", &bearer(ADMIN))]),
            Scope::Read,
            Ok(Principal::Token("ops".into())),
        ),
        (
            headers(&[("authorization", &bearer(ADMIN))]),
            Scope::Ingest,
            Err(Denial::MissingScope(Scope::Ingest)),
        ),
        (
            headers(&[("authorization", &bearer(INGEST))]),
            Scope::Read,
            Err(Denial::MissingScope(Scope::Read)),
        ),
        (
            headers(&[("dd-api-key", INGEST)]),
            Scope::Ingest,
            Ok(Principal::Token("payments".into())),
        ),
    ];
    for (index, (headers, scope, expected)) in cases.into_iter().enumerate() {
        // a fresh address each time, so the failure limit stays out of it
        let peer = Some(IpAddr::from([192, 0, 2, u8::try_from(index).unwrap()]));
        assert_eq!(
            gate.decide(peer, &headers, Some(scope)),
            expected,
            "case {index}"
        );
    }
    assert_eq!(
        gate.decide(peer, &headers(&[]), None),
        Ok(Principal::Anonymous)
    );
}

#[test]
fn test_without_access_control_everything_is_let_in() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::load(&config(dir.path(), false, &[])).unwrap();
    for listener in [
        Listener::OtlpGrpc,
        Listener::OtlpHttp,
        Listener::Http,
        Listener::Datadog,
    ] {
        let gate = access.gate(listener);
        assert_eq!(
            gate.decide(
                Some("203.0.113.9".parse().unwrap()),
                &headers(&[]),
                Some(Scope::Admin)
            ),
            Ok(Principal::Anonymous)
        );
    }
}

#[test]
fn test_allow_list_lets_networks_in_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::load(&config(dir.path(), false, &["10.0.0.0/8"])).unwrap();
    let datadog = access.gate(Listener::Datadog);
    let inside: IpAddr = "10.1.2.3".parse().unwrap();
    assert_eq!(
        datadog.decide(Some(inside), &headers(&[]), Some(Scope::Ingest)),
        Ok(Principal::Network(inside))
    );
    // a Datadog agent's own API key from an allowed network is no reason to refuse
    assert_eq!(
        datadog.decide(
            Some(inside),
            &headers(&[("dd-api-key", "datadog-key")]),
            Some(Scope::Ingest)
        ),
        Ok(Principal::Network(inside))
    );
    assert_eq!(
        datadog.decide(
            Some("11.0.0.1".parse().unwrap()),
            &headers(&[]),
            Some(Scope::Ingest)
        ),
        Err(Denial::SourceNotAllowed)
    );
    // listeners without an allow-list stay open when no tokens exist
    assert_eq!(
        access.gate(Listener::OtlpHttp).decide(
            Some("11.0.0.1".parse().unwrap()),
            &headers(&[]),
            Some(Scope::Ingest)
        ),
        Ok(Principal::Anonymous)
    );
}

#[test]
fn test_repeated_failures_are_rate_limited_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::load(&config(dir.path(), true, &[])).unwrap();
    let gate = access.gate(Listener::OtlpHttp);
    let attacker = Some("198.51.100.1".parse().unwrap());
    let good = headers(&[("authorization", &format!("Bearer {INGEST}"))]);
    for _ in 0..5 {
        assert_eq!(
            gate.decide(attacker, &headers(&[]), Some(Scope::Ingest)),
            Err(Denial::Unauthenticated)
        );
    }
    assert!(matches!(
        gate.decide(attacker, &good, Some(Scope::Ingest)),
        Err(Denial::RateLimited(_))
    ));
    assert!(
        gate.decide(
            Some("198.51.100.2".parse().unwrap()),
            &good,
            Some(Scope::Ingest)
        )
        .is_ok()
    );
}

#[test]
fn test_tokens_file_reload_and_sticky_enforcement() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), false, &[]);
    let access = Access::load(&config).unwrap();
    let gate = access.gate(Listener::Http);
    let peer = Some("192.0.2.50".parse().unwrap());
    let token = tokens::generate_token().unwrap();
    let with_token = headers(&[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(
        gate.decide(peer, &headers(&[]), Some(Scope::Read)),
        Ok(Principal::Anonymous)
    );

    let record = tokens::record("late", &["read".to_owned()], &tokens::hash_hex(&token)).unwrap();
    tokens::write_file(&tokens_path(&config), &[record]).unwrap();
    access.reload();
    assert_eq!(
        gate.decide(peer, &with_token, Some(Scope::Read)),
        Ok(Principal::Token("late".into()))
    );
    assert_eq!(
        gate.decide(peer, &headers(&[]), Some(Scope::Read)),
        Err(Denial::Unauthenticated)
    );

    std::fs::write(tokens_path(&config), "broken line").unwrap();
    access.reload();
    assert!(
        gate.decide(peer, &with_token, Some(Scope::Read)).is_ok(),
        "a broken file keeps the last tokens"
    );

    std::fs::remove_file(tokens_path(&config)).unwrap();
    access.reload();
    assert_eq!(
        gate.decide(
            Some("192.0.2.51".parse().unwrap()),
            &headers(&[]),
            Some(Scope::Read)
        ),
        Err(Denial::Unauthenticated),
        "removing the file must not open the server"
    );
}

#[test]
fn test_exposure_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut exposed = config(dir.path(), false, &[]);
    exposed.otlp_http = Some("0.0.0.0:0".parse().unwrap());
    let error = check_exposure(&exposed).unwrap_err().to_string();
    assert!(
        error.contains("refusing to listen on otlp-http 0.0.0.0:0"),
        "{error}"
    );
    assert!(
        error.contains("ashiato token create --scope ingest"),
        "{error}"
    );
    assert!(error.contains("--insecure-no-auth"), "{error}");

    assert!(
        check_exposure(&config(dir.path(), false, &[])).is_ok(),
        "loopback needs nothing"
    );
    let mut insecure = exposed.clone();
    insecure.access.insecure_no_auth = true;
    assert!(check_exposure(&insecure).is_ok());
    let mut allowed = exposed.clone();
    allowed.access.allow.otlp_http = vec![Cidr::parse("10.0.0.0/8").unwrap()];
    assert!(check_exposure(&allowed).is_ok());
    let mut tokens = exposed;
    tokens.access.tokens_file = Some(dir.path().join("tokens"));
    assert!(check_exposure(&tokens).is_ok());
}

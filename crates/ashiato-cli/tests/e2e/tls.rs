//! TLS end to end: a test CA and certificates made here with rcgen (no
//! committed keys), the real Python SDK exporting over gRPC and HTTP with
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`, client certificates on ingest, and a
//! renewed certificate served without restart; the real `ddtrace` tracer
//! sending to the Datadog listener over HTTPS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::support::{PeerPython, TestServer, try_run_peer, wait_until};

/// A CA and a certificate it signed, written as PEM files under `dir`.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|error| panic!("write {name}: {error}"));
    path.to_str().unwrap_or_default().to_owned()
}

fn make_pki(dir: &Path, prefix: &str, leaf_name: &str, client: bool) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // what Python's strict X.509 verification (3.13+) insists on
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("ashiato test ca {prefix}"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca certificate");
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("certificate params");
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params
        .distinguished_name
        .push(DnType::CommonName, leaf_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("certificate");
    Pki {
        ca: write(dir, &format!("{prefix}-ca.pem"), &ca.pem()),
        cert: write(dir, &format!("{prefix}-cert.pem"), &cert.pem()),
        key: write(dir, &format!("{prefix}-key.pem"), &key.serialize_pem()),
    }
}

fn export(endpoint: &str, protocol: &str, extra: &[(&str, &str)]) -> Result<String, String> {
    // refused exports are retried until this deadline (seconds): keep it short
    let mut env = vec![
        ("PEER_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5"),
    ];
    env.extend_from_slice(extra);
    // `requests` lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (set on some hosts,
    // CI images among them) override the CA the HTTP exporter configures
    let ca = extra
        .iter()
        .find(|(key, _)| *key == "OTEL_EXPORTER_OTLP_CERTIFICATE")
        .map_or("", |(_, value)| *value);
    env.push(("REQUESTS_CA_BUNDLE", ca));
    env.push(("CURL_CA_BUNDLE", ca));
    try_run_peer(PeerPython::Proto, "otel_shop.py", &env)
}

#[test]
fn test_sdk_exports_over_tls_and_a_renewed_certificate_is_served() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let first = make_pki(dir.path(), "first", "server", false);
    let cert = write(
        dir.path(),
        "server-cert.pem",
        &std::fs::read_to_string(&first.cert).unwrap_or_default(),
    );
    let key = write(
        dir.path(),
        "server-key.pem",
        &std::fs::read_to_string(&first.key).unwrap_or_default(),
    );
    let server = TestServer::start_with(&["--tls-cert", &cert, "--tls-key", &key]);
    let grpc = format!("https://{}", server.addrs.otlp_grpc);
    let http = format!("https://{}", server.addrs.otlp_http);
    let trust_first = [("OTEL_EXPORTER_OTLP_CERTIFICATE", first.ca.as_str())];
    for (protocol, endpoint) in [("grpc", &grpc), ("http/protobuf", &http)] {
        let trace_id = export(endpoint, protocol, &trust_first)
            .unwrap_or_else(|error| panic!("{protocol} over tls: {error}"));
        assert_eq!(trace_id.len(), 32, "{trace_id}");
    }

    // plain HTTP on a TLS listener gets no HTTP answer
    let mut plain = TcpStream::connect(server.addrs.http).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let _ = plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    // a renewed certificate (another CA) is picked up without restart
    let second = make_pki(dir.path(), "second", "server", false);
    std::fs::copy(&second.key, &key).expect("replace key");
    std::fs::copy(&second.cert, &cert).expect("replace cert");
    let trust_second = [("OTEL_EXPORTER_OTLP_CERTIFICATE", second.ca.as_str())];
    wait_until("the renewed certificate to be loaded", || {
        server
            .stderr()
            .contains("tls certificate reloaded")
            .then_some(())
    });
    export(&http, "http/protobuf", &trust_second)
        .unwrap_or_else(|error| panic!("renewed certificate: {error}"));
    assert!(
        export(&http, "http/protobuf", &trust_first).is_err(),
        "the old CA must no longer verify"
    );
}

#[test]
fn test_ingest_requires_client_certificates_when_configured() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let server_pki = make_pki(dir.path(), "server", "server", false);
    let client_pki = make_pki(dir.path(), "client", "payments", true);
    let server = TestServer::start_with(&[
        "--tls-cert",
        &server_pki.cert,
        "--tls-key",
        &server_pki.key,
        "--tls-client-ca",
        &client_pki.ca,
    ]);
    let grpc = format!("https://{}", server.addrs.otlp_grpc);
    let http = format!("https://{}", server.addrs.otlp_http);
    let trust = ("OTEL_EXPORTER_OTLP_CERTIFICATE", server_pki.ca.as_str());
    for (protocol, endpoint) in [("grpc", &grpc), ("http/protobuf", &http)] {
        assert!(
            export(endpoint, protocol, &[trust]).is_err(),
            "{protocol}: accepted without a client certificate"
        );
        let with_client = [
            trust,
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                client_pki.cert.as_str(),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", client_pki.key.as_str()),
        ];
        export(endpoint, protocol, &with_client)
            .unwrap_or_else(|error| panic!("{protocol} with a client certificate: {error}"));
    }
}

/// `GET` on the API listener over TLS (the tests' HTTP client speaks plain
/// HTTP only): curl, trusting `ca`; Null when it fails or is not JSON.
fn get_over_tls(server: &TestServer, ca: &str, path: &str) -> serde_json::Value {
    let url = format!("https://{}{path}", server.addrs.http);
    let output = Command::new("curl")
        .args(["--silent", "--fail", "--cacert", ca, &url])
        .output()
        .unwrap_or_else(|error| panic!("run curl: {error}"));
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

/// Runs the ddtrace peer against `agent`, trusting only `ca` (its native
/// exporter reads `SSL_CERT_FILE`; the others are set so no host default
/// steers it); returns the trace id it printed.
fn send_ddtrace(agent: &str, ca: &str) -> String {
    let env = [
        ("DD_TRACE_AGENT_URL", agent),
        ("DD_TRACE_API_VERSION", "v0.4"),
        ("DD_SERVICE", "dd-users"),
        ("DD_REMOTE_CONFIGURATION_ENABLED", "false"),
        ("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false"),
        ("DD_TRACE_STARTUP_LOGS", "false"),
        ("SSL_CERT_FILE", ca),
        ("REQUESTS_CA_BUNDLE", ca),
        ("CURL_CA_BUNDLE", ca),
    ];
    let output = try_run_peer(PeerPython::Datadog, "dd_shop.py", &env)
        .unwrap_or_else(|error| panic!("ddtrace peer: {error}"));
    let printed: serde_json::Value = output
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("dd peer printed no ids: {output:?}"));
    printed["trace_id"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn test_ddtrace_sends_to_the_datadog_listener_over_tls() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let pki = make_pki(dir.path(), "server", "server", false);
    let other = make_pki(dir.path(), "other", "server", false);
    let server = TestServer::start_with(&["--tls-cert", &pki.cert, "--tls-key", &pki.key]);
    let agent = format!(
        "https://{}",
        server.addrs.datadog.expect("datadog listener is on")
    );
    // a tracer that does not trust the server's CA sends nothing (it has
    // exited, its flush failed, before the trusted run below)
    let untrusted = send_ddtrace(&agent, &other.ca);
    let trusted = send_ddtrace(&agent, &pki.ca);
    assert_eq!(trusted.len(), 32, "{trusted}");
    wait_until(&format!("trace {trusted} with 4 spans"), || {
        let trace = get_over_tls(&server, &pki.ca, &format!("/api/v1/traces/{trusted}"));
        (trace["spans"].as_array().map_or(0, Vec::len) >= 4).then_some(())
    });
    let absent = get_over_tls(&server, &pki.ca, &format!("/api/v1/traces/{untrusted}"));
    assert!(
        absent.is_null(),
        "untrusted tracer's trace stored: {absent}"
    );
}

//! The access control options of `ashiato serve`: `--tokens-file`,
//! `--allow-<listener> CIDR,...`, `--insecure-no-auth`, their environment
//! variables and TOML keys (`tokens_file`, `allow_otlp_grpc`, ...,
//! `insecure_no_auth`, and `[[token]]` tables with `name`, `scopes` and
//! `sha256`), resolved like every other option (flag > environment > file
//! > default).

use std::path::PathBuf;

use ashiato_server::auth::{AccessConfig, AllowLists, Cidr, tokens};
use ashiato_server::tls::TlsConfig;
use serde::Deserialize;

#[derive(Debug, Default, clap::Args)]
pub struct AccessArgs {
    /// File of API tokens (hashes only; `ashiato token create` writes it);
    /// naming it turns token checks on even while it is empty
    /// [default: <data-dir>/tokens, used when it exists]
    #[arg(long, env = "ASHIATO_TOKENS_FILE", value_name = "FILE")]
    tokens_file: Option<PathBuf>,

    /// Source networks let into the OTLP/gRPC listener without a token
    /// (comma-separated CIDRs, e.g. 10.0.0.0/8)
    #[arg(long, env = "ASHIATO_ALLOW_OTLP_GRPC", value_name = "CIDRS", value_delimiter = ',', value_parser = Cidr::parse)]
    allow_otlp_grpc: Vec<Cidr>,

    /// Source networks let into the OTLP/HTTP listener without a token
    #[arg(long, env = "ASHIATO_ALLOW_OTLP_HTTP", value_name = "CIDRS", value_delimiter = ',', value_parser = Cidr::parse)]
    allow_otlp_http: Vec<Cidr>,

    /// Source networks let into the UI/API listener without a token
    #[arg(long, env = "ASHIATO_ALLOW_HTTP", value_name = "CIDRS", value_delimiter = ',', value_parser = Cidr::parse)]
    allow_http: Vec<Cidr>,

    /// Source networks let into the Datadog listener without a token
    /// (Datadog tracers send no credentials)
    #[arg(long, env = "ASHIATO_ALLOW_DATADOG", value_name = "CIDRS", value_delimiter = ',', value_parser = Cidr::parse)]
    allow_datadog: Vec<Cidr>,

    /// Listen beyond loopback without tokens or allow-lists (anyone who
    /// reaches the ports can read and write everything)
    #[arg(long, env = "ASHIATO_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,

    /// PEM certificate chain: serve TLS on every listener (with --tls-key;
    /// reloaded when the file changes)
    #[arg(
        long,
        env = "ASHIATO_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert
    #[arg(
        long,
        env = "ASHIATO_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,

    /// PEM CA certificates: the ingest listeners then require client
    /// certificates signed by them
    #[arg(long, env = "ASHIATO_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
}

/// The TLS settings: flags over the file's `tls_cert`, `tls_key`,
/// `tls_client_ca`.
pub fn resolve_tls(
    args: &AccessArgs,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    client_ca: &Option<PathBuf>,
) -> anyhow::Result<Option<TlsConfig>> {
    let cert = args.tls_cert.clone().or_else(|| cert.clone());
    let key = args.tls_key.clone().or_else(|| key.clone());
    let client_ca = args.tls_client_ca.clone().or_else(|| client_ca.clone());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsConfig {
            client_ca,
            ..TlsConfig::new(cert, key)
        })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => anyhow::bail!("tls_client_ca needs tls_cert and tls_key"),
        _ => anyhow::bail!("tls_cert and tls_key go together: set both or neither"),
    }
}

/// A `[[token]]` table of the config file.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileToken {
    name: String,
    scopes: Vec<String>,
    /// Hex SHA-256 of the token (`ashiato token hash` prints it).
    sha256: String,
}

/// The same settings from the TOML file.
#[derive(Clone, Copy)]
pub struct FileAccess<'a> {
    pub tokens_file: &'a Option<PathBuf>,
    pub token: &'a Option<Vec<FileToken>>,
    pub allow_otlp_grpc: &'a Option<Vec<String>>,
    pub allow_otlp_http: &'a Option<Vec<String>>,
    pub allow_http: &'a Option<Vec<String>>,
    pub allow_datadog: &'a Option<Vec<String>>,
    pub insecure_no_auth: &'a Option<bool>,
}

pub fn resolve(args: &AccessArgs, file: FileAccess<'_>) -> anyhow::Result<AccessConfig> {
    let allow =
        |key: &str, flag: &[Cidr], file: &Option<Vec<String>>| -> anyhow::Result<Vec<Cidr>> {
            if !flag.is_empty() {
                return Ok(flag.to_vec());
            }
            file.iter()
                .flatten()
                .map(|text| {
                    Cidr::parse(text)
                        .map_err(|reason| anyhow::anyhow!("invalid {key} in config file: {reason}"))
                })
                .collect()
        };
    let mut configured = Vec::new();
    for token in file.token.iter().flatten() {
        let record = tokens::record(&token.name, &token.scopes, &token.sha256)
            .map_err(|error| anyhow::anyhow!("invalid token in config file: {error}"))?;
        if configured
            .iter()
            .any(|existing: &tokens::TokenRecord| existing.name == record.name)
        {
            anyhow::bail!(
                "invalid token in config file: duplicate name {:?}",
                record.name
            );
        }
        configured.push(record);
    }
    Ok(AccessConfig {
        tokens_file: args
            .tokens_file
            .clone()
            .or_else(|| file.tokens_file.clone()),
        tokens: configured,
        allow: AllowLists {
            otlp_grpc: allow(
                "allow_otlp_grpc",
                &args.allow_otlp_grpc,
                file.allow_otlp_grpc,
            )?,
            otlp_http: allow(
                "allow_otlp_http",
                &args.allow_otlp_http,
                file.allow_otlp_http,
            )?,
            http: allow("allow_http", &args.allow_http, file.allow_http)?,
            datadog: allow("allow_datadog", &args.allow_datadog, file.allow_datadog)?,
        },
        insecure_no_auth: args.insecure_no_auth || file.insecure_no_auth.unwrap_or(false),
        ..AccessConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        access: AccessArgs,
    }

    #[derive(Debug, Default, Deserialize)]
    struct TestFile {
        tokens_file: Option<PathBuf>,
        token: Option<Vec<FileToken>>,
        allow_otlp_grpc: Option<Vec<String>>,
        allow_datadog: Option<Vec<String>>,
        insecure_no_auth: Option<bool>,
    }

    fn resolve_with(flags: &[&str], file: &str) -> anyhow::Result<AccessConfig> {
        let mut argv = vec!["ashiato"];
        argv.extend_from_slice(flags);
        let args = TestCli::try_parse_from(argv)?.access;
        let file: TestFile = toml::from_str(file)?;
        resolve(
            &args,
            FileAccess {
                tokens_file: &file.tokens_file,
                token: &file.token,
                allow_otlp_grpc: &file.allow_otlp_grpc,
                allow_otlp_http: &None,
                allow_http: &None,
                allow_datadog: &file.allow_datadog,
                insecure_no_auth: &file.insecure_no_auth,
            },
        )
    }

    #[test]
    fn test_defaults_are_open_and_loopback_only() {
        assert_eq!(resolve_with(&[], "").unwrap(), AccessConfig::default());
    }

    #[test]
    fn test_file_and_flags() {
        let hash = tokens::hash_hex("secret");
        let file = format!(
            r#"
            tokens_file = "/etc/ashiato/tokens"
            allow_datadog = ["10.0.0.0/8"]
            allow_otlp_grpc = ["192.168.0.0/16"]
            insecure_no_auth = true
            [[token]]
            name = "ci"
            scopes = ["read", "ingest"]
            sha256 = "{hash}"
            "#
        );
        let config = resolve_with(&[], &file).unwrap();
        assert_eq!(
            config.tokens_file,
            Some(PathBuf::from("/etc/ashiato/tokens"))
        );
        assert_eq!(config.tokens.len(), 1);
        assert_eq!(config.tokens[0].name, "ci");
        assert_eq!(
            config.allow.datadog,
            vec![Cidr::parse("10.0.0.0/8").unwrap()]
        );
        assert!(config.insecure_no_auth);

        let flagged = resolve_with(
            &[
                "--allow-datadog",
                "172.16.0.0/12,10.1.2.3",
                "--tokens-file",
                "/tmp/t",
            ],
            &file,
        )
        .unwrap();
        assert_eq!(flagged.allow.datadog.len(), 2);
        assert_eq!(
            flagged.allow.otlp_grpc.len(),
            1,
            "not flagged: from the file"
        );
        assert_eq!(flagged.tokens_file, Some(PathBuf::from("/tmp/t")));
    }

    #[test]
    fn test_bad_values_are_refused() {
        let cases = [
            (vec!["--allow-http", "10.0.0.0/33"], ""),
            (vec![], r#"allow_datadog = ["nowhere"]"#),
            (
                vec![],
                "[[token]]\nname = \"x\"\nscopes = [\"write\"]\nsha256 = \"00\"",
            ),
            (
                vec![],
                "[[token]]\nname = \"x\"\nscopes = [\"read\"]\nsha256 = \"00\"",
            ),
        ];
        for (flags, file) in cases {
            assert!(resolve_with(&flags, file).is_err(), "{flags:?} {file}");
        }
    }
}

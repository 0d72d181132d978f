//! API tokens: generation, hashing, the tokens file and its reloading.
//!
//! A token is `ashiato_` followed by 64 hex digits of OS randomness (256
//! bits). Only its SHA-256 is stored. A plain, unsalted, fast hash is the
//! right tool here, unlike for passwords: the input is uniformly random
//! and 256 bits long, so there is no dictionary to try and brute force over
//! the hash is as hopeless as over the token itself; salting or stretching
//! would only slow every request down.
//!
//! The tokens file holds one token a line, `NAME SCOPES sha256:HEX` with
//! scopes comma-separated (`payments ingest sha256:9f86…`); `#` starts a
//! comment. `ashiato token create/revoke` rewrite it atomically (temporary
//! file, then rename), so a server polling it never reads half a file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Send telemetry to any ingest endpoint.
    Ingest,
    /// Read through the query API (`GET /api/...`).
    Read,
    /// Change issues and settings (`PATCH`, `POST`, ... under `/api`);
    /// implies `read`.
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One stored token: a name (shown in logs and on issue changes), its
/// scopes and the SHA-256 of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub sha256: [u8; 32],
}

/// Name and scopes only: configs are logged at startup.
impl fmt::Debug for TokenRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TokenRecord")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl TokenRecord {
    /// Whether the token grants `scope` (`admin` includes `read`).
    pub fn grants(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|held| *held == scope || (*held == Scope::Admin && scope == Scope::Read))
    }

    /// The record's line in the tokens file.
    pub fn to_line(&self) -> String {
        let scopes: Vec<&str> = self.scopes.iter().map(|scope| scope.as_str()).collect();
        format!(
            "{} {} sha256:{}",
            self.name,
            scopes.join(","),
            hex(&self.sha256)
        )
    }
}

/// Why a tokens file or a configured token could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("invalid token name {0:?}: use letters, digits, '-', '_' and '.'")]
    Name(String),
    #[error("unknown scope {0:?}: expected ingest, read or admin")]
    Scope(String),
    #[error("invalid sha256 {0:?}: expected 64 hex digits")]
    Hash(String),
    #[error("a token named {0:?} already exists")]
    Duplicate(String),
    #[error("no token named {0:?}")]
    Unknown(String),
    #[error("reading or writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A new random token (shown once, never stored).
pub fn generate_token() -> Result<String, TokensError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| TokensError::Random(error.to_string()))?;
    Ok(format!("ashiato_{}", hex(&bytes)))
}

/// The SHA-256 of a presented or generated token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A record from its parts, checking the name and scopes (config file
/// entries and `ashiato token create`).
pub fn record(name: &str, scopes: &[String], sha256: &str) -> Result<TokenRecord, TokensError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(TokensError::Name(name.to_owned()));
    }
    let mut parsed = Vec::new();
    for scope in scopes {
        let scope = Scope::parse(scope).ok_or_else(|| TokensError::Scope(scope.clone()))?;
        if !parsed.contains(&scope) {
            parsed.push(scope);
        }
    }
    if parsed.is_empty() {
        return Err(TokensError::Scope(String::new()));
    }
    let digits = sha256.strip_prefix("sha256:").unwrap_or(sha256);
    let hash = unhex(digits).ok_or_else(|| TokensError::Hash(sha256.to_owned()))?;
    Ok(TokenRecord {
        name: name.to_owned(),
        scopes: parsed,
        sha256: hash,
    })
}

/// Parses the tokens file.
pub fn parse_file(text: &str) -> Result<Vec<TokenRecord>, TokensError> {
    let mut records: Vec<TokenRecord> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_error = |reason: String| TokensError::Line {
            line: index + 1,
            reason,
        };
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let fields: Vec<&str> = content.split_whitespace().collect();
        let &[name, scopes, hash] = fields.as_slice() else {
            return Err(line_error("expected `NAME SCOPES sha256:HEX`".to_owned()));
        };
        let scopes: Vec<String> = scopes.split(',').map(str::to_owned).collect();
        let parsed = record(name, &scopes, hash).map_err(|error| line_error(error.to_string()))?;
        if records.iter().any(|existing| existing.name == parsed.name) {
            return Err(line_error(format!("duplicate token name {name:?}")));
        }
        records.push(parsed);
    }
    Ok(records)
}

const FILE_HEADER: &str = "# ashiato API tokens: NAME SCOPES sha256:HEX (only hashes are stored)\n\
# managed by `ashiato token create|revoke|list`; the server reloads this file on change\n";

/// Reads the tokens file; a missing file is an empty set.
pub fn read_file(path: &Path) -> Result<Vec<TokenRecord>, TokensError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_file(&text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(TokensError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces the tokens file with `records`: a temporary file next to it,
/// readable by the owner only, then renamed over it.
pub fn write_file(path: &Path, records: &[TokenRecord]) -> Result<(), TokensError> {
    let io_error = |source| TokensError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut text = FILE_HEADER.to_owned();
    for record in records {
        text.push_str(&record.to_line());
        text.push('\n');
    }
    let temporary = path.with_extension("tmp");
    write_private(&temporary, text.as_bytes()).map_err(io_error)?;
    std::fs::rename(&temporary, path).map_err(io_error)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The effective tokens: those of the config file and of the tokens file.
#[derive(Debug, Default)]
pub struct TokenSet {
    records: Vec<TokenRecord>,
}

impl TokenSet {
    pub fn new(records: Vec<TokenRecord>) -> TokenSet {
        TokenSet { records }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record whose hash matches `token`. Every record is compared in
    /// constant time and the loop never stops early, so the answer's timing
    /// says nothing about how close a guess was.
    pub fn find(&self, token: &str) -> Option<&TokenRecord> {
        let presented = hash_token(token);
        let mut found = None;
        for record in &self.records {
            if bool::from(record.sha256[..].ct_eq(&presented[..])) {
                found = Some(record);
            }
        }
        found
    }

    /// The record with exactly this hash (a session re-checking that the
    /// token it was opened with still exists and keeps its scopes).
    pub fn by_hash(&self, sha256: &[u8; 32]) -> Option<&TokenRecord> {
        self.records
            .iter()
            .find(|record| bool::from(record.sha256[..].ct_eq(&sha256[..])))
    }
}

/// The file's identity for change polling: modification time and length.
pub fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// The hex form of a token's hash, for config files.
pub fn hash_hex(token: &str) -> String {
    hex(&hash_token(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_generated_tokens_are_distinct_and_found_by_hash() {
        let first = generate_token().unwrap();
        let second = generate_token().unwrap();
        assert_ne!(first, second);
        assert_eq!(first.len(), "ashiato_".len() + 64);
        let set = TokenSet::new(vec![
            record("a", &["ingest".to_owned()], &hash_hex(&first)).unwrap(),
            record("b", &["admin".to_owned()], &hash_hex(&second)).unwrap(),
        ]);
        assert_eq!(set.find(&first).map(|r| r.name.as_str()), Some("a"));
        assert_eq!(set.find(&second).map(|r| r.name.as_str()), Some("b"));
        assert!(set.find("ashiato_guess").is_none());
        assert!(set.find("").is_none());
    }

    #[test]
    fn test_scopes_admin_implies_read_only() {
        let admin = record("x", &["admin".to_owned()], &hash_hex("t")).unwrap();
        assert!(admin.grants(Scope::Admin));
        assert!(admin.grants(Scope::Read));
        assert!(!admin.grants(Scope::Ingest));
        let ingest = record("y", &["ingest".to_owned()], &hash_hex("t")).unwrap();
        assert!(!ingest.grants(Scope::Read));
    }

    #[test]
    fn test_file_round_trip_and_bad_lines() {
        let records = vec![
            record(
                "payments",
                &["ingest".to_owned(), "read".to_owned()],
                &hash_hex("p"),
            )
            .unwrap(),
            record("ci", &["read".to_owned()], &hash_hex("c")).unwrap(),
        ];
        let mut text = FILE_HEADER.to_owned();
        for record in &records {
            text.push_str(&record.to_line());
            text.push('\n');
        }
        assert_eq!(parse_file(&text).unwrap(), records);
        let bad = [
            ("payments ingest", "expected `NAME SCOPES sha256:HEX`"),
            ("payments write sha256:00", "unknown scope"),
            ("payments ingest sha256:00", "invalid sha256"),
            ("pay/ments ingest sha256:00", "invalid token name"),
        ];
        for (line, expected) in bad {
            let error = parse_file(line).unwrap_err().to_string();
            assert!(error.starts_with("line 1: "), "{error}");
            assert!(error.contains(expected), "{line}: {error}");
        }
        let duplicate = format!("{}\n{}\n", records[1].to_line(), records[1].to_line());
        assert!(
            parse_file(&duplicate)
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
    }

    #[test]
    fn test_write_then_read_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/tokens");
        assert!(read_file(&path).unwrap().is_empty());
        let records = vec![record("n", &["read".to_owned()], &hash_hex("x")).unwrap()];
        write_file(&path, &records).unwrap();
        assert_eq!(read_file(&path).unwrap(), records);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

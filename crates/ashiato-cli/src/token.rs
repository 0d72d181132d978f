//! `ashiato token create|revoke|list|hash`: manage the tokens file a
//! server reads (`<data-dir>/tokens` or `--tokens-file`). A running server
//! notices the change within seconds; no restart.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use ashiato_server::auth::tokens::{self, TokensError};

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

/// Where the tokens file is: the server's data directory or an explicit file.
#[derive(Debug, clap::Args)]
struct TokensFileArg {
    /// The server's data directory (its tokens file is <DIR>/tokens)
    #[arg(
        long,
        env = "ASHIATO_DATA_DIR",
        default_value = "./ashiato-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// The tokens file, when the server runs with --tokens-file
    #[arg(long, env = "ASHIATO_TOKENS_FILE", value_name = "FILE")]
    tokens_file: Option<PathBuf>,
}

impl TokensFileArg {
    fn path(&self) -> PathBuf {
        self.tokens_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tokens"))
    }
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Create a token and print it once (only its hash is stored)
    Create {
        /// Name shown in logs and on issue changes, e.g. payments
        #[arg(long)]
        name: String,
        /// ingest, read or admin (admin includes read); repeatable
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        #[command(flatten)]
        file: TokensFileArg,
    },
    /// Revoke a token by name
    Revoke {
        name: String,
        #[command(flatten)]
        file: TokensFileArg,
    },
    /// List token names and scopes
    List {
        #[command(flatten)]
        file: TokensFileArg,
    },
    /// Print the SHA-256 of a token read from stdin, for `[[token]]` in a
    /// config file
    Hash,
}

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match args.command {
        TokenCommand::Create { name, scopes, file } => {
            let path = file.path();
            let mut records = tokens::read_file(&path)?;
            if records.iter().any(|record| record.name == name) {
                return Err(TokensError::Duplicate(name).into());
            }
            let token = tokens::generate_token()?;
            records.push(tokens::record(&name, &scopes, &tokens::hash_hex(&token))?);
            tokens::write_file(&path, &records)?;
            writeln!(stdout, "{token}")?;
            eprintln!(
                "token {name:?} created in {}; it is shown only this once",
                path.display()
            );
        }
        TokenCommand::Revoke { name, file } => {
            let path = file.path();
            let mut records = tokens::read_file(&path)?;
            let before = records.len();
            records.retain(|record| record.name != name);
            if records.len() == before {
                return Err(TokensError::Unknown(name).into());
            }
            tokens::write_file(&path, &records)?;
            eprintln!("token {name:?} revoked in {}", path.display());
        }
        TokenCommand::List { file } => {
            for record in tokens::read_file(&file.path())? {
                let scopes: Vec<&str> = record.scopes.iter().map(|scope| scope.as_str()).collect();
                writeln!(stdout, "{}\t{}", record.name, scopes.join(","))?;
            }
        }
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("reading the token from stdin")?;
            writeln!(stdout, "{}", tokens::hash_hex(token.trim()))?;
        }
    }
    stdout.flush()?;
    Ok(())
}

//! `rmhost config print | hash-token | gen-token`.

use super::{ConfigArgs, EXIT_USAGE};
use clap::Subcommand;
use rmhost_core::config::{self, Format, Override};

/// Config verbs.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration and where each value came from.
    Print {
        /// Where the config comes from.
        #[command(flatten)]
        config: ConfigArgs,
        /// Output format: toml or json.
        #[arg(long, default_value = "toml")]
        format: String,
    },
    /// Print the SHA-256 of a token, for `[auth]` in the config.
    HashToken {
        /// The token.
        token: String,
    },
    /// Make a new token: 32 random bytes from the OS, in hex, and its SHA-256 for `[auth]`.
    /// Prints `token HEX` and `sha256 HEX` on two lines.
    GenToken,
}

/// Loads the configuration the way `run` does: the file given (or ./rmhost.toml when it
/// exists), the process environment, then `overrides`.
pub fn load(
    args: &ConfigArgs,
    mut overrides: Vec<Override>,
) -> Result<config::Loaded, config::ConfigError> {
    let default_file = std::path::Path::new(config::DEFAULT_FILE);
    let path = match &args.config {
        Some(p) => Some(p.as_path()),
        None if default_file.exists() => Some(default_file),
        None => None,
    };
    let mut all = Vec::new();
    for s in &args.set {
        all.push(Override::parse_set(s)?);
    }
    all.append(&mut overrides);
    config::load(path, &config::process_env, &all)
}

/// Runs a config verb.
pub fn run(cmd: ConfigCommand) -> anyhow::Result<i32> {
    match cmd {
        ConfigCommand::Print { config, format } => {
            let format: Format = match format.parse() {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("rmhost: --format: {e}");
                    return Ok(EXIT_USAGE);
                }
            };
            match load(&config, Vec::new()) {
                Ok(loaded) => {
                    print!("{}", config::render(&loaded, format));
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("rmhost: config error: {e}");
                    Ok(EXIT_USAGE)
                }
            }
        }
        ConfigCommand::HashToken { token } => {
            println!("{}", config::hash_token(&token));
            Ok(0)
        }
        ConfigCommand::GenToken => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| anyhow::anyhow!("the OS gave no randomness: {e}"))?;
            let token = hex::encode(bytes);
            println!("token {token}");
            println!("sha256 {}", config::hash_token(&token));
            eprintln!(
                "rmhost: give the token to the client (--token / RMHOST_TOKEN); put the sha256 \
                 in [auth] admin_token_sha256 or [auth.tenants.NAME] token_sha256"
            );
            Ok(0)
        }
    }
}

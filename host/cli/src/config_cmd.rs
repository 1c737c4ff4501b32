//! `rmhost config print | hash-token`.

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
    }
}

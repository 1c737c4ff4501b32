//! The `rmhost` binary: parses the command line, sets up logging, runs the verb and turns
//! its outcome into an exit code. `anyhow` lives here, at the edge, and nowhere else.

use clap::Parser;
use rmhost::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat, daemon: bool) {
    // The daemon logs at info (its audit log); client and offline verbs only warn, so
    // their output stays readable.
    let default = if daemon { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("RMHOST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() {
    let cli = Cli::parse();
    let daemon = matches!(cli.command, rmhost::Command::Run(_));
    if !daemon {
        // A client verb piped into `head` should end quietly when the pipe closes, as
        // Unix tools do, instead of panicking on a failed write.
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(
        cli.log_format,
        matches!(cli.command, rmhost::Command::Run(_)),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rmhost: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async move {
        match rmhost::dispatch(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("rmhost: {e:#}");
                1
            }
        }
    });
    std::process::exit(code);
}

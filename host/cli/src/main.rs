//! The `rmhost` binary: parses the command line, sets up logging (and, for the daemon,
//! the optional OTLP trace exporter), runs the verb and turns its outcome into an exit
//! code. `anyhow` lives here, at the edge, and nowhere else.

use clap::Parser;
use rmhost::otel::{self, OtelError, Tracing};
use rmhost::{Cli, EXIT_USAGE, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Installs the log subscriber; with `traces`, the OTLP exporter's layer next to it. Runs
/// inside the tokio runtime (the exporter's channel and batch task live on it).
fn init_logging(
    format: LogFormat,
    daemon: bool,
    traces: Option<&otel::Settings>,
) -> Result<Option<Tracing>, OtelError> {
    // The daemon logs at info (its audit log); client and offline verbs only warn, so
    // their output stays readable.
    let default = if daemon { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("RMHOST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Each layer has its own filter: the log lines keep RMHOST_LOG's, the exporter sees
    // the request and policy-call spans only (DEBUG, so they stay disabled, and free, when
    // nothing exports them).
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    }];
    let tracing = match traces {
        Some(settings) => {
            let (tracing, layer) = settings.install()?;
            layers.push(layer);
            Some(tracing)
        }
        None => None,
    };
    tracing_subscriber::registry().with(layers).init();
    if let Some(s) = traces {
        tracing::info!(
            endpoint = %s.endpoint,
            from = s.endpoint_var,
            service = %s.service_name,
            "OTLP traces on"
        );
    }
    Ok(tracing)
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
    // Only the daemon exports traces; a bad OTEL_* value stops it before it serves.
    let traces = if daemon {
        match otel::settings(&|k| std::env::var(k).ok()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rmhost: {e}");
                std::process::exit(EXIT_USAGE);
            }
        }
    } else {
        None
    };
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
    let tracing = {
        let _inside = runtime.enter();
        match init_logging(cli.log_format, daemon, traces.as_ref()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("rmhost: {e}");
                std::process::exit(EXIT_USAGE);
            }
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
    // The runtime still runs the batch processor's task: flush before exiting.
    if let Some(t) = tracing {
        t.shutdown();
    }
    std::process::exit(code);
}

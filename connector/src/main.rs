//! hftlive's Bybit v5 connector for hftbacktest 0.9.4 live bots: market data and orders.
//! Wires the command line, config, logging, the iceoryx2 channels and the live loop.

mod bybit;
mod cli;
mod config;
mod connector;
mod event_loop;
mod events;
mod heartbeat;
mod ipc;
mod metrics;
mod tls;
mod trading;

use std::{io::IsTerminal, process::ExitCode, str::FromStr};

use anyhow::Context;
use tracing::{error, info, warn};
use tracing_subscriber::filter::Targets;

use crate::{cli::Command, config::Config};

/// Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad command line or config.
const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    init_logging();
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!(
                "connector {} (hftlive, bybit, hftbacktest 0.9.4)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            error!("{e}; see --help");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&args.name, config) {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn run(name: &str, config: Config) -> anyhow::Result<()> {
    info!(
        name,
        public_url = config.public_url,
        rest_url = config
            .rest_url
            .as_deref()
            .unwrap_or("(none: tick/lot not checked)"),
        category = config.category,
        depth = config.depth,
        "starting bybit connector"
    );
    match &config.trading {
        Some(t) => info!(
            private_url = t.private_url,
            trade_url = t.trade_url,
            order_prefix = config.order_prefix,
            limits = ?config.limits,
            "order routing on"
        ),
        None => info!(reason = config.trading_off, "order routing off"),
    }
    let channel = ipc::describe_channel_config();
    let batch = 2 * config.depth as usize + 2;
    if channel.buffer_size < batch {
        warn!(
            buffer_size = channel.buffer_size,
            batch, "channel buffer_size is smaller than one registration batch"
        );
    }
    let tls = tls::Tls::from_system_store()?;
    let needs_tls = config.public_url.starts_with("wss://")
        || config
            .rest_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
    if needs_tls && !tls.has_roots() {
        warn!("TLS URLs configured but the system CA store is empty");
    }
    // One thread runs the loop, its tasks, the I/O driver and the iceoryx2 channels: a socket read wakes the
    // thread that parses the message and publishes its events to the bots. (A multi-thread runtime parks
    // block_on's thread apart from the driver's, and the channels had a thread of their own: two wakes more
    // per exchange message.) Blocking REST calls run on their own threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let ipc::Ipc {
        events,
        requests,
        stats,
    } = ipc::open(name)?;
    let result = runtime.block_on(async {
        tokio::select! {
            result = event_loop::run(config, tls, events, requests, stats, shutdown_signal()) => result,
            () = ipc::forward_requests() => Err(anyhow::anyhow!("the bots' requests are no longer read")),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    ipc::close();
    result
}

/// SIGINT or SIGTERM. If the handlers cannot be installed, run until killed.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => info!("SIGINT: shutting down"),
                _ = term.recv() => info!("SIGTERM: shutting down"),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "cannot install signal handlers");
            std::future::pending::<()>().await;
        }
    }
}

fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| Targets::from_str(&s).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}

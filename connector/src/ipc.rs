//! The bots' side: hftbacktest's own iceoryx2 channels (`N/ToBot`, `N/FromBot`), driven from one
//! dedicated thread because iceoryx2 ports are not `Send`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Context, anyhow};
use hftbacktest::{
    live::ipc::{TO_ALL, iceoryx::IceoryxBuilder},
    types::{LiveEvent, LiveRequest, TRADE_EVENT},
};
use serde::Deserialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{info, warn};

use crate::{
    events::now_ns,
    metrics::{Hops, Kind},
};

/// How often the thread looks for bot requests when no event is going out.
const POLL: Duration = Duration::from_millis(1);

/// Events for bots: (bot id or TO_ALL, event), sent in order.
pub type Batch = Vec<(u64, LiveEvent)>;

#[derive(Debug, Default)]
pub struct IpcStats {
    pub sent: AtomicU64,
    pub send_errors: AtomicU64,
    pub received: AtomicU64,
    pub receive_errors: AtomicU64,
    /// Live market events sent to every bot, timed once iceoryx2 has them.
    pub hops: Hops,
}

/// Hands batches to the IPC thread.
#[derive(Clone)]
pub struct EventSender(mpsc::Sender<Batch>);

impl EventSender {
    /// Fails only if the IPC thread has stopped.
    pub fn send(&self, batch: Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.0
            .send(batch)
            .map_err(|_| anyhow!("the IPC thread has stopped"))
    }
}

pub struct Ipc {
    pub events: EventSender,
    pub requests: UnboundedReceiver<(u64, LiveRequest)>,
    pub stats: Arc<IpcStats>,
    pub thread: JoinHandle<()>,
}

/// Opens the connector side of the channels named `name` and starts the IPC thread.
pub fn start(name: &str) -> anyhow::Result<Ipc> {
    let (event_tx, event_rx) = mpsc::channel::<Batch>();
    let (request_tx, request_rx) = unbounded_channel();
    let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<()>>();
    let stats = Arc::new(IpcStats::default());
    let thread_stats = stats.clone();
    let name = name.to_string();
    let thread = thread::Builder::new()
        .name("ipc".into())
        .spawn(move || {
            let ports = IceoryxBuilder::new(&name)
                .bot(false)
                .sender::<LiveEvent>()
                .and_then(|tx| {
                    Ok((
                        tx,
                        IceoryxBuilder::new(&name)
                            .bot(false)
                            .receiver::<LiveRequest>()?,
                    ))
                });
            let (to_bots, from_bots) = match ports {
                Ok(ports) => ports,
                Err(error) => {
                    let _ = ready_tx.send(Err(anyhow!(
                        "cannot open iceoryx2 channels {name}/ToBot and {name}/FromBot: {error}"
                    )));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            info!(name, "iceoryx2 channels open");
            pump(&to_bots, &from_bots, &event_rx, &request_tx, &thread_stats);
            info!("IPC thread stopped");
        })
        .context("cannot start the IPC thread")?;
    ready_rx
        .recv()
        .map_err(|_| anyhow!("the IPC thread died while opening the channels"))??;
    Ok(Ipc {
        events: EventSender(event_tx),
        requests: request_rx,
        stats,
        thread,
    })
}

fn pump(
    to_bots: &hftbacktest::live::ipc::iceoryx::IceoryxSender<LiveEvent>,
    from_bots: &hftbacktest::live::ipc::iceoryx::IceoryxReceiver<LiveRequest>,
    events: &mpsc::Receiver<Batch>,
    requests: &UnboundedSender<(u64, LiveRequest)>,
    stats: &IpcStats,
) {
    loop {
        let mut next = events.recv_timeout(POLL);
        loop {
            match next {
                Ok(batch) => {
                    for (id, event) in &batch {
                        match to_bots.send(*id, event) {
                            Ok(()) => {
                                stats.sent.fetch_add(1, Ordering::Relaxed);
                                if let (TO_ALL, LiveEvent::Feed { event, .. }) = (*id, event) {
                                    let kind = if event.ev & TRADE_EVENT != 0 {
                                        Kind::Trade
                                    } else {
                                        Kind::Depth
                                    };
                                    stats.hops.observe(
                                        kind,
                                        event.exch_ts,
                                        event.local_ts,
                                        now_ns(),
                                    );
                                }
                            }
                            Err(error) => {
                                let n = stats.send_errors.fetch_add(1, Ordering::Relaxed) + 1;
                                if n <= 10 || n.is_power_of_two() {
                                    warn!(%error, id, count = n, "cannot publish event to bots");
                                }
                            }
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                // The event loop is gone: shut down.
                Err(RecvTimeoutError::Disconnected) => return,
            }
            next = events.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            });
        }
        loop {
            match from_bots.receive() {
                Ok(Some(request)) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    if requests.send(request).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let n = stats.receive_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if n <= 10 || n.is_power_of_two() {
                        warn!(%error, count = n, "unreadable request from a bot");
                    }
                    break;
                }
            }
        }
    }
}

/// The channel sizes hftbacktest will use (it reads the same file itself and silently falls
/// back to its defaults on any error; we say so out loud).
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct ChannelConfig {
    pub buffer_size: usize,
    pub max_bots: usize,
}

/// hftbacktest 0.9.4's defaults when no (valid) file is given.
pub const DEFAULT_CHANNEL: ChannelConfig = ChannelConfig {
    buffer_size: 10_000,
    max_bots: 200,
};

/// Logs which channel configuration the crate will pick up, and returns it.
pub fn describe_channel_config() -> ChannelConfig {
    let Ok(path) = std::env::var("HFTBACKTEST_CHANNEL_CONFIG") else {
        info!(
            buffer_size = DEFAULT_CHANNEL.buffer_size,
            max_bots = DEFAULT_CHANNEL.max_bots,
            "HFTBACKTEST_CHANNEL_CONFIG not set: hftbacktest defaults (large shared memory)"
        );
        return DEFAULT_CHANNEL;
    };
    let parsed = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            toml::from_str::<ChannelConfig>(&text).map_err(|e| e.message().to_string())
        });
    match parsed {
        Ok(config) => {
            info!(
                path,
                buffer_size = config.buffer_size,
                max_bots = config.max_bots,
                "channel config"
            );
            config
        }
        Err(error) => {
            warn!(
                path,
                error,
                buffer_size = DEFAULT_CHANNEL.buffer_size,
                max_bots = DEFAULT_CHANNEL.max_bots,
                "HFTBACKTEST_CHANNEL_CONFIG unusable: hftbacktest silently falls back to its defaults"
            );
            DEFAULT_CHANNEL
        }
    }
}

//! The bots' side: hftbacktest's own iceoryx2 channels (`N/ToBot`, `N/FromBot`), owned by the thread that
//! runs the event loop. iceoryx2 ports are not `Send`, so they live in a thread-local: the task that turned
//! an exchange message into events publishes them itself, with no hand-over to another thread (that
//! hand-over was one more wake per message, 100-200 µs on a busy 2-core host).

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::anyhow;
use hftbacktest::{
    live::ipc::{
        TO_ALL,
        iceoryx::{IceoryxBuilder, IceoryxReceiver, IceoryxSender},
    },
    types::{LiveEvent, LiveRequest, TRADE_EVENT},
};
use serde::Deserialize;
use tokio::{
    sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel},
    time::{MissedTickBehavior, interval},
};
use tracing::{info, warn};

use crate::{
    events::now_ns,
    metrics::{Hops, Kind},
};

/// How often the bots' requests are looked for.
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

struct Ports {
    to_bots: IceoryxSender<LiveEvent>,
    from_bots: IceoryxReceiver<LiveRequest>,
    /// Where the bots' requests go: the event loop's `Ipc::requests`.
    requests: UnboundedSender<(u64, LiveRequest)>,
    stats: Arc<IpcStats>,
}

thread_local! {
    /// The open channels, on the thread that opened them (the runtime's only thread).
    static PORTS: RefCell<Option<Ports>> = const { RefCell::new(None) };
}

/// Publishes batches to the bots, from the thread that opened the channels. (It is `Send` so that spawned
/// tasks can hold it; on a current-thread runtime they all run on that thread. A send from any other thread
/// fails.)
#[derive(Clone)]
pub struct EventSender(());

impl EventSender {
    /// Fails if the channels are closed, or if called off the thread that opened them. The bots' requests
    /// waiting by then are taken too, so that an order never waits for the next poll while the market is busy.
    pub fn send(&self, batch: Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        PORTS.with_borrow(|ports| match ports {
            Some(ports) => {
                ports.publish(&batch);
                ports.receive();
                Ok(())
            }
            None => Err(anyhow!("the iceoryx2 channels are not open on this thread")),
        })
    }
}

pub struct Ipc {
    pub events: EventSender,
    /// What the bots ask, read after each publish and by `forward_requests`.
    pub requests: UnboundedReceiver<(u64, LiveRequest)>,
    pub stats: Arc<IpcStats>,
}

/// Opens the connector side of the channels named `name` on this thread, which must be the one that runs
/// the event loop (a current-thread runtime's `block_on`).
pub fn open(name: &str) -> anyhow::Result<Ipc> {
    let ports = IceoryxBuilder::new(name)
        .bot(false)
        .sender::<LiveEvent>()
        .and_then(|tx| {
            Ok((
                tx,
                IceoryxBuilder::new(name)
                    .bot(false)
                    .receiver::<LiveRequest>()?,
            ))
        });
    let (to_bots, from_bots) = ports.map_err(|error| {
        anyhow!("cannot open iceoryx2 channels {name}/ToBot and {name}/FromBot: {error}")
    })?;
    let stats = Arc::new(IpcStats::default());
    let (request_tx, requests) = unbounded_channel();
    PORTS.set(Some(Ports {
        to_bots,
        from_bots,
        requests: request_tx,
        stats: stats.clone(),
    }));
    info!(name, "iceoryx2 channels open");
    Ok(Ipc {
        events: EventSender(()),
        requests,
        stats,
    })
}

/// Closes this thread's channels (the bots see the connector go).
pub fn close() {
    if PORTS.take().is_some() {
        info!("iceoryx2 channels closed");
    }
}

/// Hands the bots' requests to the event loop every POLL while no event goes out (each publish takes them
/// too); returns once the loop stopped taking them or the channels are closed. Runs on the thread that
/// opened them (not `Send`: `block_on`, not spawn).
pub async fn forward_requests() {
    let mut poll = interval(POLL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        poll.tick().await;
        let open = PORTS.with_borrow(|ports| ports.as_ref().is_some_and(Ports::receive));
        if !open {
            return;
        }
    }
}

impl Ports {
    fn publish(&self, batch: &Batch) {
        let stats = &self.stats;
        for (id, event) in batch {
            match self.to_bots.send(*id, event) {
                Ok(()) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    if let (TO_ALL, LiveEvent::Feed { event, .. }) = (*id, event) {
                        let kind = if event.ev & TRADE_EVENT != 0 {
                            Kind::Trade
                        } else {
                            Kind::Depth
                        };
                        stats
                            .hops
                            .observe(kind, event.exch_ts, event.local_ts, now_ns());
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

    /// Every request waiting, to the event loop; false once it no longer takes them.
    fn receive(&self) -> bool {
        loop {
            match self.from_bots.receive() {
                Ok(Some(request)) => {
                    self.stats.received.fetch_add(1, Ordering::Relaxed);
                    if self.requests.send(request).is_err() {
                        return false;
                    }
                }
                Ok(None) => return true,
                Err(error) => {
                    let n = self.stats.receive_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if n <= 10 || n.is_power_of_two() {
                        warn!(%error, count = n, "unreadable request from a bot");
                    }
                    return true;
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

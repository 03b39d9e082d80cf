//! The live loop: connect, subscribe, read frames, ping, watch for staleness, reconnect with
//! backoff, and route bot requests and REST answers through the [`Connector`] state.

use std::{
    future::Future,
    pin::{Pin, pin},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::anyhow;
use futures_util::{SinkExt, StreamExt};
use hftbacktest::types::LiveRequest;
use tokio::{
    sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel},
    time::{MissedTickBehavior, interval, interval_at, sleep},
};
use tokio_tungstenite::tungstenite::Message;
use tracing::{error, info, warn};

use crate::{
    bybit::{
        rest::{InstrumentSpec, RestClient, RestError},
        stream::{self, Backoff, WsSink},
    },
    config::Config,
    connector::{Connector, Outbox, WsOp},
    events::now_ns,
    heartbeat::Heartbeat,
    ipc::{EventSender, IpcStats},
    tls::Tls,
    trading::{
        control,
        link::{self, DeskInput},
    },
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

enum Input {
    Bot(u64, LiveRequest),
    Instrument(String, Result<InstrumentSpec, RestError>),
    StatsTick,
}

/// Everything the loop listens to besides the WebSocket.
struct Inputs {
    bots: UnboundedReceiver<(u64, LiveRequest)>,
    rest_rx: UnboundedReceiver<(String, Result<InstrumentSpec, RestError>)>,
    rest_tx: UnboundedSender<(String, Result<InstrumentSpec, RestError>)>,
    stats: tokio::time::Interval,
}

impl Inputs {
    /// Next input; an error once the iceoryx2 channels have closed.
    async fn next(&mut self) -> anyhow::Result<Input> {
        tokio::select! {
            request = self.bots.recv() => match request {
                Some((id, request)) => Ok(Input::Bot(id, request)),
                None => Err(anyhow!("the iceoryx2 channels have closed")),
            },
            Some((symbol, result)) = self.rest_rx.recv() => Ok(Input::Instrument(symbol, result)),
            _ = self.stats.tick() => Ok(Input::StatsTick),
        }
    }
}

struct Live {
    config: Config,
    tls: Tls,
    rest: Option<RestClient>,
    connector: Connector,
    events: EventSender,
    ipc_stats: Arc<IpcStats>,
    inputs: Inputs,
    /// The order desk: order requests, registrations (for open orders and position).
    desk: UnboundedSender<DeskInput>,
}

/// Why a connection ended.
enum End {
    Shutdown,
    Dropped(String),
}

pub async fn run(
    config: Config,
    tls: Tls,
    events: EventSender,
    bots: UnboundedReceiver<(u64, LiveRequest)>,
    ipc_stats: Arc<IpcStats>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let rest = config
        .rest_url
        .as_deref()
        .map(|url| RestClient::new(url, &config.category, config.rest_timeout, &tls));
    let (rest_tx, rest_rx) = unbounded_channel();
    let mut stats = interval(config.stats_interval);
    stats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    stats.reset();
    let desk = link::spawn(&config, &tls, events.clone());
    if let Some(addr) = config.control_listen {
        control::spawn(addr, desk.clone(), ipc_stats.clone());
    }
    let mut live = Live {
        desk,
        connector: Connector::new(config.depth, rest.is_some()),
        config,
        tls,
        rest,
        events,
        ipc_stats,
        inputs: Inputs {
            bots,
            rest_rx,
            rest_tx,
            stats,
        },
    };
    let result = live.run(shutdown).await;
    live.log_stats();
    result
}

impl Live {
    async fn run(&mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut shutdown = pin!(shutdown);
        let mut backoff = Backoff::new(self.config.reconnect_min, self.config.reconnect_max);
        let mut ever_connected = false;
        let mut announced_unreachable = false;
        let url = self.config.public_url.clone();
        let tls = self.tls.clone();
        loop {
            info!(url, "connecting");
            let connect = stream::connect(&url, &tls, CONNECT_TIMEOUT);
            let Some(attempt) = self.offline(shutdown.as_mut(), connect).await? else {
                return Ok(());
            };
            match attempt {
                Ok((sink, source)) => {
                    info!(url, "connected");
                    ever_connected = true;
                    let started = Instant::now();
                    match self.session(sink, source, shutdown.as_mut()).await? {
                        End::Shutdown => return Ok(()),
                        End::Dropped(reason) => {
                            self.connector.stats.reconnects += 1;
                            warn!(reason, "public stream lost: reconnecting");
                            let out = self
                                .connector
                                .on_disconnect(&format!("bybit public stream lost: {reason}"));
                            self.publish(out)?;
                            // A connection that lived a while was healthy: start the backoff over.
                            if started.elapsed() >= self.config.stale_after {
                                backoff.reset();
                            }
                        }
                    }
                }
                Err(error) => {
                    warn!(%error, url, "cannot connect");
                    // Once connected, the drop was announced; before that, say it once.
                    if !ever_connected && !announced_unreachable {
                        announced_unreachable = true;
                        let out = self
                            .connector
                            .on_disconnect(&format!("bybit public stream unreachable: {error}"));
                        self.publish(out)?;
                    }
                }
            }
            let delay = backoff.next_delay();
            info!(
                delay_ms = delay.as_millis() as u64,
                "waiting before reconnecting"
            );
            let Some(()) = self.offline(shutdown.as_mut(), sleep(delay)).await? else {
                return Ok(());
            };
        }
    }

    /// Runs `task` while serving bots and REST answers; `None` on shutdown. Not connected:
    /// WebSocket requests wait for the next subscribe-all.
    async fn offline<T>(
        &mut self,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
        task: impl Future<Output = T>,
    ) -> anyhow::Result<Option<T>> {
        let mut task = pin!(task);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(None),
                result = &mut task => return Ok(Some(result)),
                input = self.inputs.next() => { self.handle(input?)?; }
            }
        }
    }

    async fn session(
        &mut self,
        mut sink: WsSink,
        mut source: stream::WsSource,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> anyhow::Result<End> {
        let ops = self.connector.on_connect();
        let ops = self.publish(ops)?;
        if let Err(reason) = send_ops(&mut sink, ops).await {
            return Ok(End::Dropped(reason));
        }
        let ping_every = self.config.ping_interval;
        let mut ping = interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut watchdog = interval(Duration::from_millis(500));
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_frame = Instant::now();
        let mut heartbeat = Heartbeat::from_env();
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(End::Shutdown);
                }
                frame = source.next() => {
                    let now = Instant::now();
                    let out = match frame {
                        None => return Ok(End::Dropped("stream ended".into())),
                        Some(Err(error)) => return Ok(End::Dropped(error.to_string())),
                        Some(Ok(Message::Text(text))) => {
                            self.connector.on_text(text.as_str(), now_ns(), now)
                        }
                        // Bybit sends text only; count it as unknown via the parser.
                        Some(Ok(Message::Binary(bytes))) => {
                            let text = String::from_utf8_lossy(&bytes);
                            self.connector.on_text(&text, now_ns(), now)
                        }
                        // tungstenite answers pings itself; both prove the link is alive.
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Outbox::default(),
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default();
                            return Ok(End::Dropped(format!("closed by exchange {why}").trim().to_string()));
                        }
                        Some(Ok(Message::Frame(_))) => continue,
                    };
                    last_frame = now;
                    if let Err(reason) = send_ops(&mut sink, self.publish(out)?).await {
                        return Ok(End::Dropped(reason));
                    }
                }
                _ = ping.tick() => {
                    if let Err(error) = stream::send_op(&mut sink, None, "ping", &[]).await {
                        return Ok(End::Dropped(format!("ping failed: {error}")));
                    }
                }
                _ = watchdog.tick() => {
                    let silent = last_frame.elapsed();
                    if silent > self.config.stale_after {
                        return Ok(End::Dropped(format!("stale: no message for {:.1}s", silent.as_secs_f64())));
                    }
                    // Frames within the last ping interval: the stream is alive.
                    if silent <= self.config.ping_interval {
                        heartbeat.beat();
                    }
                    if let Some(symbol) = self.connector.overdue_resync(Instant::now(), self.config.resync_timeout) {
                        return Ok(End::Dropped(format!("no snapshot for {symbol} after resubscribing")));
                    }
                }
                input = self.inputs.next() => {
                    if let Err(reason) = send_ops(&mut sink, self.handle(input?)?).await {
                        return Ok(End::Dropped(reason));
                    }
                }
            }
        }
    }

    /// Applies one non-WebSocket input; returns the WebSocket requests it needs.
    fn handle(&mut self, input: Input) -> anyhow::Result<Vec<WsOp>> {
        let out = match input {
            Input::Bot(
                id,
                LiveRequest::RegisterInstrument {
                    symbol,
                    tick_size,
                    lot_size,
                },
            ) => {
                let _ = self.desk.send(DeskInput::Register {
                    bot: id,
                    symbol: symbol.clone(),
                    tick_size,
                });
                self.connector
                    .register(id, &symbol, tick_size, lot_size, now_ns())
            }
            Input::Bot(bot, LiveRequest::Order { symbol, order }) => {
                self.connector.stats.order_requests += 1;
                if self
                    .desk
                    .send(DeskInput::Order { bot, symbol, order })
                    .is_err()
                {
                    return Err(anyhow!("the order desk has stopped"));
                }
                Outbox::default()
            }
            Input::Instrument(symbol, result) => self.connector.on_instrument(&symbol, result),
            Input::StatsTick => {
                self.log_stats();
                Outbox::default()
            }
        };
        self.publish(out)
    }

    /// Sends events to bots and starts REST checks; returns the WebSocket requests (sent by
    /// the caller when connected, dropped otherwise: connecting subscribes everything anyway).
    fn publish(&mut self, out: Outbox) -> anyhow::Result<Vec<WsOp>> {
        self.events.send(out.events)?;
        for symbol in out.checks {
            self.start_check(symbol);
        }
        Ok(out.ws)
    }

    fn start_check(&self, symbol: String) {
        let Some(client) = self.rest.clone() else {
            return;
        };
        let tx = self.inputs.rest_tx.clone();
        tokio::spawn(async move {
            let query = symbol.clone();
            let result = tokio::task::spawn_blocking(move || client.instrument(&query))
                .await
                .unwrap_or_else(|e| Err(RestError::Http(format!("check task failed: {e}"))));
            let _ = tx.send((symbol, result));
        });
    }

    fn log_stats(&self) {
        let s = &self.connector.stats;
        let ipc = &self.ipc_stats;
        info!(
            messages = s.messages,
            malformed = s.malformed,
            unknown = s.unknown,
            unsolicited = s.unsolicited,
            snapshots = s.snapshots,
            deltas = s.deltas,
            ignored_deltas = s.ignored_deltas,
            gaps = s.gaps,
            stream_restarts = s.stream_restarts,
            missing_cts = s.missing_cts,
            trades = s.trades,
            pongs = s.pongs,
            op_failures = s.op_failures,
            reconnects = s.reconnects,
            registrations = s.registrations,
            order_requests = s.order_requests,
            ipc_sent = ipc.sent.load(Ordering::Relaxed),
            ipc_send_errors = ipc.send_errors.load(Ordering::Relaxed),
            ipc_received = ipc.received.load(Ordering::Relaxed),
            ipc_receive_errors = ipc.receive_errors.load(Ordering::Relaxed),
            symbols = self.connector.symbols().count(),
            "stats"
        );
        if s.malformed > 0 && s.malformed * 100 > s.messages.max(1) {
            error!(
                malformed = s.malformed,
                messages = s.messages,
                "over 1% of frames are malformed"
            );
        }
    }
}

/// Sends requests in order; the error is why the connection should be dropped.
async fn send_ops(sink: &mut WsSink, ops: Vec<WsOp>) -> Result<(), String> {
    for op in ops {
        if let Err(error) = stream::send_op(sink, Some(op.req_id), op.op, &op.args).await {
            return Err(format!("{} failed: {error}", op.op));
        }
    }
    Ok(())
}

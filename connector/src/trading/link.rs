//! The trading link: the private stream (auth; order, execution, position, wallet), the trade
//! stream (order.create, order.cancel), the signed REST reads that reconcile after every
//! (re)connect, and the control API. One task owns the [`Desk`] and carries out what it returns.

use std::{
    future::Future,
    pin::pin,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use hftbacktest::types::Order;
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, oneshot},
    time::{MissedTickBehavior, interval_at, sleep, timeout},
};
use tokio_tungstenite::tungstenite::Message;
use tracing::{error, info, warn};

use super::{
    desk::{Desk, DeskOut, TradeOp},
    msg::{self, OrderUpdate, PositionUpdate, PrivateFrame},
    sign::{Keys, RECV_WINDOW_MS},
};
use crate::{
    bybit::{
        rest::RestClient,
        stream::{self, Backoff, WsSink, WsSource},
    },
    config::{Config, Trading},
    events::now_ns,
    ipc::EventSender,
    tls::Tls,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PRIVATE_TOPICS: [&str; 4] = ["order", "execution", "position", "wallet"];

/// What the rest of the connector asks of the desk.
pub enum DeskInput {
    Order {
        bot: u64,
        symbol: String,
        order: Order,
    },
    Register {
        bot: u64,
        symbol: String,
        tick_size: f64,
    },
    Status(oneshot::Sender<Value>),
    Kill(oneshot::Sender<Value>),
}

/// (session number, orderLinkId, answer): answers for an earlier session are stale.
type Lookup = (u64, String, Result<Option<OrderUpdate>, String>);
/// (symbol, the orderLinkIds a REST cancel-all cancelled, or why it failed): the kill switch.
type CancelAll = (String, Result<Vec<String>, String>);
/// Pages of 50 (Bybit's largest); a cursor chain longer than this is an error, not a loop.
const MAX_PAGES: usize = 20;
type Reconciled = Result<(Vec<OrderUpdate>, Vec<PositionUpdate>), String>;

struct Link {
    desk: Desk,
    events: EventSender,
    inputs: mpsc::UnboundedReceiver<DeskInput>,
    lookups_tx: mpsc::UnboundedSender<Lookup>,
    lookups_rx: mpsc::UnboundedReceiver<Lookup>,
    cancel_all_tx: mpsc::UnboundedSender<CancelAll>,
    cancel_all_rx: mpsc::UnboundedReceiver<CancelAll>,
    /// The signed REST client, when trading is configured.
    rest: Option<(RestClient, Keys)>,
    category: String,
    exchange_url: String,
    /// Random per start: a bot watching GET /trading sees the connector restart (its IPC
    /// registration died with the old process) and starts over.
    instance: String,
    /// Counts sessions, so a lookup from an earlier one is not taken for this one's.
    session_no: u64,
}

/// Why a trading session ended.
enum End {
    Dropped(String),
    /// The exchange refused the keys: stop, do not retry.
    Refused(String),
}

/// Starts the desk task (and the control API when configured); returns where to send inputs.
pub fn spawn(config: &Config, tls: &Tls, events: EventSender) -> mpsc::UnboundedSender<DeskInput> {
    let (tx, inputs) = mpsc::unbounded_channel();
    let off = config.trading.is_none().then(|| config.trading_off.clone());
    let desk = Desk::new(
        &config.category,
        &config.order_prefix,
        config.limits.clone(),
        off,
    );
    let (lookups_tx, lookups_rx) = mpsc::unbounded_channel();
    let (cancel_all_tx, cancel_all_rx) = mpsc::unbounded_channel();
    let rest = config.trading.as_ref().map(|t| {
        let client = RestClient::new(&t.rest_url, &config.category, config.rest_timeout, tls);
        (client, Keys::new(&t.api_key, &t.secret.0))
    });
    let link = Link {
        desk,
        events,
        inputs,
        lookups_tx,
        lookups_rx,
        cancel_all_tx,
        cancel_all_rx,
        rest,
        category: config.category.clone(),
        exchange_url: config
            .trading
            .as_ref()
            .map(|t| t.trade_url.clone())
            .unwrap_or_default(),
        instance: format!("{:016x}", rand::random::<u64>()),
        session_no: 0,
    };
    let session = config.trading.clone().map(|t| {
        let backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
        (t, tls.clone(), backoff, config.ping_interval)
    });
    tokio::spawn(async move {
        let mut link = link;
        match (session, link.rest.clone()) {
            (Some((t, tls, backoff, ping)), Some((rest, keys))) => {
                link.run(t, rest, keys, tls, backoff, ping).await
            }
            _ => link.serve_forever().await,
        }
    });
    tx
}

impl Link {
    fn publish(&self, out: &mut DeskOut) -> bool {
        self.events.send(std::mem::take(&mut out.events)).is_ok()
    }

    /// Applies one input; returns the trade ops to send (only meaningful when connected).
    fn handle(&mut self, input: DeskInput) -> Vec<TradeOp> {
        let mut out = match input {
            DeskInput::Order { bot, symbol, order } => {
                let now = std::time::Instant::now();
                self.desk.request(bot, &symbol, &order, now, now_ns())
            }
            DeskInput::Register {
                bot,
                symbol,
                tick_size,
            } => self.desk.register(bot, &symbol, tick_size),
            DeskInput::Status(reply) => {
                let mut view = self.desk.snapshot(&self.exchange_url);
                view["instance"] = self.instance.clone().into();
                let _ = reply.send(view);
                DeskOut::default()
            }
            DeskInput::Kill(reply) => {
                let out = self.desk.kill();
                let symbols = match &self.rest {
                    Some(_) => out.cancel_all.clone(),
                    None => vec![], // trading off: nothing was ever sent
                };
                for symbol in &symbols {
                    self.spawn_cancel_all(symbol.clone());
                }
                let _ = reply.send(json!({
                    "killed": true,
                    "cancel_requests": symbols.len() + out.ops.len(),
                    "cancel_all": symbols,
                }));
                out
            }
        };
        self.publish(&mut out);
        out.ops
    }

    /// One REST cancel-all for `symbol`; its answer comes back through `cancel_all_rx`.
    fn spawn_cancel_all(&self, symbol: String) {
        let Some((rest, keys)) = self.rest.clone() else {
            return;
        };
        let (tx, category) = (self.cancel_all_tx.clone(), self.category.clone());
        tokio::spawn(async move {
            let answer = cancel_all(rest, keys, &category, &symbol).await;
            let _ = tx.send((symbol, answer));
        });
    }

    fn on_cancel_all(&mut self, (symbol, answer): CancelAll) -> Vec<TradeOp> {
        let mut out = self.desk.on_cancel_all(&symbol, answer);
        self.publish(&mut out);
        out.ops
    }

    /// Trading is off: answer bots (refusals) and the control API until the end.
    async fn serve_forever(&mut self) {
        while let Some(input) = self.inputs.recv().await {
            self.handle(input);
        }
    }

    /// Runs `task` while answering inputs (trade ops are dropped: not connected).
    async fn serve_while<T>(&mut self, task: impl Future<Output = T>) -> Option<T> {
        let mut task = pin!(task);
        loop {
            tokio::select! {
                result = &mut task => return Some(result),
                input = self.inputs.recv() => {
                    let input = input?;
                    self.handle(input);
                }
                // Not connected: the desk sends nothing now; the next reconcile cancels what is open.
                Some(answer) = self.cancel_all_rx.recv() => {
                    self.on_cancel_all(answer);
                }
            }
        }
    }

    async fn run(
        &mut self,
        t: Trading,
        rest: RestClient,
        keys: Keys,
        tls: Tls,
        mut backoff: Backoff,
        ping: Duration,
    ) {
        loop {
            info!(
                private_url = t.private_url,
                trade_url = t.trade_url,
                "trading: connecting"
            );
            let started = std::time::Instant::now();
            let end = self.session(&t, &keys, &rest, &tls, ping).await;
            let Some(end) = end else { return };
            match end {
                End::Refused(reason) => {
                    error!(
                        reason,
                        "trading: the exchange refused the API keys; orders stay off until restart"
                    );
                    let mut out = self.desk.switch_off(&format!("API keys refused: {reason}"));
                    self.publish(&mut out);
                    return self.serve_forever().await;
                }
                End::Dropped(reason) => {
                    warn!(reason, "trading link lost: reconnecting");
                    let mut out = self.desk.on_link_down(&reason);
                    self.publish(&mut out);
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff.reset();
                    }
                }
            }
            let delay = backoff.next_delay();
            if self.serve_while(sleep(delay)).await.is_none() {
                return;
            }
        }
    }

    /// One connection of both streams: auth, subscribe, reconcile, then trade until a drop.
    /// None when the connector is shutting down.
    async fn session(
        &mut self,
        t: &Trading,
        keys: &Keys,
        rest: &RestClient,
        tls: &Tls,
        ping: Duration,
    ) -> Option<End> {
        let private = self
            .serve_while(open(&t.private_url, tls, keys, false))
            .await?;
        let (mut psink, mut psource) = match private {
            Ok(pair) => pair,
            Err(end) => return Some(end),
        };
        let trade = self
            .serve_while(open(&t.trade_url, tls, keys, true))
            .await?;
        let (mut tsink, mut tsource) = match trade {
            Ok(pair) => pair,
            Err(end) => return Some(end),
        };
        self.session_no += 1;
        let session = self.session_no;
        let topics: Vec<String> = PRIVATE_TOPICS.iter().map(|s| s.to_string()).collect();
        if let Err(e) = stream::send_op(&mut psink, Some("sub".into()), "subscribe", &topics).await
        {
            return Some(End::Dropped(format!("subscribe failed: {e}")));
        }
        // Without the private topics no ack, fill or position would come back: wait for the yes.
        if let Err(why) = self.serve_while(subscribed(&mut psource)).await? {
            return Some(End::Dropped(why));
        }
        // Reconcile before any new order; stream frames meanwhile wait and are applied after.
        let reconciled = self
            .serve_while(reconcile(rest.clone(), keys.clone()))
            .await?;
        let (open_orders, positions) = match reconciled {
            Ok(state) => state,
            Err(e) if is_key_error(&e) => return Some(End::Refused(e)),
            Err(e) => return Some(End::Dropped(format!("reconcile failed: {e}"))),
        };
        let mut out = self.desk.reconcile(open_orders, positions, now_ns());
        self.publish(&mut out);
        for (symbol, link) in std::mem::take(&mut out.lookups) {
            let (rest, keys, tx) = (rest.clone(), keys.clone(), self.lookups_tx.clone());
            tokio::spawn(async move {
                let found = lookup(rest, keys, symbol, link.clone()).await;
                let _ = tx.send((session, link, found));
            });
        }
        if let Err(e) = send_trade_ops(&mut tsink, out.ops).await {
            return Some(End::Dropped(e));
        }
        let mut pinger = interval_at(tokio::time::Instant::now() + ping, ping);
        pinger.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Every ping is answered: a stream silent for two intervals is half-open, not quiet.
        let (mut heard_private, mut heard_trade) = (Instant::now(), Instant::now());
        loop {
            let ops = tokio::select! {
                frame = psource.next() => match frame_text(frame) {
                    Ok(Some(text)) => { heard_private = Instant::now(); self.on_text(&text) }
                    Ok(None) => { heard_private = Instant::now(); continue }
                    Err(e) => return Some(End::Dropped(format!("private stream: {e}"))),
                },
                frame = tsource.next() => match frame_text(frame) {
                    Ok(Some(text)) => { heard_trade = Instant::now(); self.on_text(&text) }
                    Ok(None) => { heard_trade = Instant::now(); continue }
                    Err(e) => return Some(End::Dropped(format!("trade stream: {e}"))),
                },
                input = self.inputs.recv() => self.handle(input?),
                Some(answer) = self.cancel_all_rx.recv() => self.on_cancel_all(answer),
                Some((from, link, found)) = self.lookups_rx.recv() => {
                    if from != session {
                        continue;
                    }
                    let mut out = self.desk.on_lookup(&link, found, now_ns());
                    self.publish(&mut out);
                    out.ops
                }
                _ = pinger.tick() => {
                    for (which, heard) in [("private", heard_private), ("trade", heard_trade)] {
                        if heard.elapsed() > 2 * ping {
                            let silent = heard.elapsed().as_secs_f64();
                            return Some(End::Dropped(format!("{which} stream silent for {silent:.0}s")));
                        }
                    }
                    let ping_private = stream::send_op(&mut psink, None, "ping", &[]).await;
                    let ping_trade = tsink.send(Message::text(json!({"op": "ping"}).to_string())).await;
                    if ping_private.is_err() || ping_trade.is_err() {
                        return Some(End::Dropped("ping failed".into()));
                    }
                    continue;
                }
            };
            if let Err(e) = send_trade_ops(&mut tsink, ops).await {
                return Some(End::Dropped(e));
            }
        }
    }

    fn on_text(&mut self, text: &str) -> Vec<TradeOp> {
        match msg::parse(text) {
            Ok(frame) => {
                let mut out = self.desk.on_frame(frame, now_ns());
                self.publish(&mut out);
                out.ops
            }
            Err(e) => {
                let head: String = text.chars().take(200).collect();
                warn!(error = %e, frame = head, "trading: malformed frame");
                Vec::new()
            }
        }
    }
}

/// The text of a frame; Ok(None) for control frames; Err when the stream is over.
fn frame_text(
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<String>, String> {
    match frame {
        None => Err("stream ended".into()),
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok(Message::Text(t))) => Ok(Some(t.as_str().to_string())),
        Some(Ok(Message::Binary(b))) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Some(Ok(Message::Close(f))) => Err(format!(
            "closed by exchange {}",
            f.map(|f| format!("{} {}", f.code, f.reason))
                .unwrap_or_default()
        )),
        Some(Ok(_)) => Ok(None),
    }
}

/// An auth answer that says the key or its signature is wrong (the private stream has only a
/// message; the trade stream's starts with Bybit's code).
fn is_key_refusal(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    ["10003", "10004", "10005", "33004"]
        .iter()
        .any(|code| why.starts_with(code))
        || why.contains("key")
        || why.contains("sign")
}

fn is_key_error(e: &str) -> bool {
    ["10003", "10004", "10005", "33004"]
        .iter()
        .any(|code| e.contains(&format!("error {code}")))
}

/// Connects and authenticates one stream; the auth reply decides.
async fn open(url: &str, tls: &Tls, keys: &Keys, trade: bool) -> Result<(WsSink, WsSource), End> {
    let (mut sink, mut source) = stream::connect(url, tls, CONNECT_TIMEOUT)
        .await
        .map_err(|e| End::Dropped(format!("cannot connect {url}: {e}")))?;
    let expires = (now_ns() / 1_000_000) as u64 + 10_000;
    let request = json!({"req_id": "auth", "op": "auth", "args": keys.ws_auth_args(expires)});
    sink.send(Message::text(request.to_string()))
        .await
        .map_err(|e| End::Dropped(format!("auth send failed: {e}")))?;
    let reply = timeout(CONNECT_TIMEOUT, async {
        loop {
            match frame_text(source.next().await) {
                Ok(Some(text)) => match msg::parse(&text) {
                    Ok(PrivateFrame::Op {
                        op,
                        success,
                        ret_msg,
                    }) if op == "auth" => {
                        return Ok((success, ret_msg));
                    }
                    Ok(PrivateFrame::TradeReply { op, code, msg, .. }) if op == "auth" => {
                        return Ok((code == 0, format!("{code} {msg}")));
                    }
                    _ => continue,
                },
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    let which = if trade { "trade" } else { "private" };
    match reply {
        Err(_) => Err(End::Dropped(format!("{which} stream: no auth reply"))),
        Ok(Err(e)) => Err(End::Dropped(format!("{which} stream: {e}"))),
        Ok(Ok((true, _))) => {
            info!(url, "trading: {which} stream authenticated");
            Ok((sink, source))
        }
        // The keys themselves refused: stop. Anything else (a clock off by more than the
        // window, a busy exchange) is worth another try after the backoff.
        Ok(Ok((false, why))) if is_key_refusal(&why) => {
            Err(End::Refused(format!("{which} stream auth: {why}")))
        }
        Ok(Ok((false, why))) => Err(End::Dropped(format!("{which} stream auth failed: {why}"))),
    }
}

/// The private stream's answer to our subscribe: Err with the reason when refused or silent.
async fn subscribed(source: &mut WsSource) -> Result<(), String> {
    let answer = timeout(CONNECT_TIMEOUT, async {
        loop {
            match frame_text(source.next().await) {
                Ok(Some(text)) => {
                    if let Ok(PrivateFrame::Op {
                        op,
                        success,
                        ret_msg,
                    }) = msg::parse(&text)
                        && op == "subscribe"
                    {
                        return if success {
                            Ok(())
                        } else {
                            Err(format!("subscribe refused: {ret_msg}"))
                        };
                    }
                }
                Ok(None) => continue,
                Err(e) => return Err(format!("private stream: {e}")),
            }
        }
    })
    .await;
    answer.unwrap_or_else(|_| Err("no answer to subscribe on the private stream".into()))
}

async fn send_trade_ops(sink: &mut WsSink, ops: Vec<TradeOp>) -> Result<(), String> {
    for op in ops {
        let now_ms = now_ns() / 1_000_000;
        let request = json!({
            "reqId": op.req_id,
            "header": {"X-BAPI-TIMESTAMP": now_ms.to_string(), "X-BAPI-RECV-WINDOW": RECV_WINDOW_MS.to_string()},
            "op": op.op,
            "args": [op.args],
        });
        if let Err(e) = sink.send(Message::text(request.to_string())).await {
            return Err(format!("{} failed: {e}", op.op));
        }
    }
    Ok(())
}

/// A signed GET (`payload`: its query string) or POST (`payload`: its JSON body).
#[derive(Clone, Copy)]
enum Verb {
    Get,
    Post,
}

/// A signed request's body (blocking client, run off the runtime); the signature covers `payload`.
async fn signed(
    rest: RestClient,
    keys: Keys,
    verb: Verb,
    path: &str,
    payload: String,
) -> Result<String, String> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let ts = (now_ns() / 1_000_000) as u64;
        let headers = [
            ("X-BAPI-API-KEY", keys.api_key.clone()),
            ("X-BAPI-TIMESTAMP", ts.to_string()),
            ("X-BAPI-RECV-WINDOW", RECV_WINDOW_MS.to_string()),
            ("X-BAPI-SIGN", keys.rest_sign(ts, &payload)),
        ];
        match verb {
            Verb::Get => rest.get_body(&format!("{path}?{payload}"), &headers),
            Verb::Post => rest.post_body(&path, &headers, &payload),
        }
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("REST task failed: {e}"))?
}

/// `POST /v5/order/cancel-all` for one symbol: the orderLinkIds the exchange says it cancelled
/// (an ack: each order's Cancelled comes on the order stream).
async fn cancel_all(
    rest: RestClient,
    keys: Keys,
    category: &str,
    symbol: &str,
) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Cancelled {
        #[serde(default)]
        order_link_id: String,
    }
    let body = json!({"category": category, "symbol": symbol}).to_string();
    let answer = signed(rest, keys, Verb::Post, "/v5/order/cancel-all", body).await?;
    let list = msg::rest_list::<Cancelled>(&answer)?;
    Ok(list.into_iter().map(|c| c.order_link_id).collect())
}

/// Open orders and positions of the USDT-settled linear account, every page.
async fn reconcile(rest: RestClient, keys: Keys) -> Reconciled {
    let orders = all_pages(&rest, &keys, "/v5/order/realtime").await?;
    let positions = all_pages(&rest, &keys, "/v5/position/list").await?;
    Ok((orders, positions))
}

async fn all_pages<T: for<'de> serde::Deserialize<'de>>(
    rest: &RestClient,
    keys: &Keys,
    path: &str,
) -> Result<Vec<T>, String> {
    let mut found = Vec::new();
    let mut cursor = String::new();
    for _ in 0..MAX_PAGES {
        let mut query = "category=linear&settleCoin=USDT&limit=50".to_string();
        if !cursor.is_empty() {
            query.push_str(&format!("&cursor={cursor}"));
        }
        let body = signed(rest.clone(), keys.clone(), Verb::Get, path, query).await?;
        let (page, next) = msg::rest_page::<T>(&body)?;
        found.extend(page);
        if next.is_empty() {
            return Ok(found);
        }
        cursor = next;
    }
    Err(format!("{path}: more than {MAX_PAGES} pages"))
}

/// One order by orderLinkId, open or recently closed (`openOnly=1`); None if the exchange
/// does not know it.
async fn lookup(
    rest: RestClient,
    keys: Keys,
    symbol: String,
    link: String,
) -> Result<Option<OrderUpdate>, String> {
    let query = format!("category=linear&symbol={symbol}&orderLinkId={link}&openOnly=1");
    let body = signed(rest, keys, Verb::Get, "/v5/order/realtime", query).await?;
    let list = msg::rest_list::<OrderUpdate>(&body)?;
    Ok(list.into_iter().find(|o| o.order_link_id == link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_key_or_signature_stops_trading() {
        for refused in [
            "API key is invalid.",
            "Invalid sign",
            "10004 error sign!",
            "10003 API key is invalid.",
        ] {
            assert!(is_key_refusal(refused), "{refused}");
        }
        for passing in [
            "Params Error",
            "10002 invalid request, please check your server timestamp",
            "10016 busy",
        ] {
            assert!(!is_key_refusal(passing), "{passing}");
        }
    }
}

//! The connector's state, free of I/O: registered symbols, their books, the bots waiting for a
//! registration batch. Each input returns an [`Outbox`] of IPC events, WebSocket commands and
//! REST checks for the event loop to carry out.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use hftbacktest::{
    live::ipc::TO_ALL,
    types::{ErrorKind, LiveEvent},
};
use tracing::{error, info, warn};

use crate::{
    bybit::{
        book::{Book, BookUpdate, LevelChange, ResetCause},
        msg::{Frame, MsgError, OpResponse, OrderbookMsg, TradesMsg, parse_frame},
        rest::{InstrumentSpec, RestError},
    },
    events::{code, depth_event, error_event, exch_ns, trade_event},
};

/// Bybit accepts at most this many topics in one subscribe request.
const TOPICS_PER_REQUEST: usize = 10;
/// Longest symbol we accept (it travels in every 512-byte IPC slot).
const MAX_SYMBOL_LEN: usize = 32;

/// A WebSocket request for the event loop to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsOp {
    pub req_id: String,
    pub op: &'static str,
    pub args: Vec<String>,
}

/// What one input asks the event loop to do.
#[derive(Debug, Default)]
pub struct Outbox {
    /// (destination bot id or TO_ALL, event), in order.
    pub events: Vec<(u64, LiveEvent)>,
    /// Sent only while connected; on connect every topic is subscribed anew anyway.
    pub ws: Vec<WsOp>,
    /// Symbols whose instrument info must be fetched over REST.
    pub checks: Vec<String>,
}

impl Outbox {
    fn error(&mut self, bot: u64, kind: ErrorKind, text: &str) {
        self.events.push((bot, error_event(kind, text)));
    }
}

/// Counters logged periodically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub messages: u64,
    pub malformed: u64,
    pub unknown: u64,
    pub unsolicited: u64,
    pub snapshots: u64,
    pub deltas: u64,
    pub ignored_deltas: u64,
    pub gaps: u64,
    pub stream_restarts: u64,
    pub missing_cts: u64,
    pub trades: u64,
    pub pongs: u64,
    pub op_failures: u64,
    pub reconnects: u64,
    pub registrations: u64,
    pub order_requests: u64,
}

#[derive(Clone, Copy, Debug)]
struct Registration {
    bot: u64,
    tick_size: f64,
    lot_size: f64,
}

#[derive(Debug, Default)]
enum Spec {
    /// No REST URL configured: nothing to check against.
    #[default]
    Unchecked,
    Fetching,
    Known(InstrumentSpec),
    /// The fetch failed for a reason other than an unknown symbol; not retried.
    Unavailable,
}

#[derive(Debug, Default)]
struct SymbolState {
    book: Book,
    /// Bots that registered while the book was not synced: they get their batch on the next reset.
    awaiting_batch: Vec<u64>,
    /// Registrations whose tick/lot wait for the REST answer.
    awaiting_check: Vec<Registration>,
    bots: Vec<u64>,
    spec: Spec,
    /// Set when a gap forced a resubscription; cleared by the next reset.
    resync_since: Option<Instant>,
    last_exch_ts: i64,
    /// Trades sent so far: the number the next one carries, less one.
    trades_sent: i64,
}

pub struct Connector {
    depth: u32,
    check_instruments: bool,
    symbols: BTreeMap<String, SymbolState>,
    /// Subscribe/unsubscribe requests in flight, by req_id, to explain a refusal.
    pending_ops: HashMap<String, Vec<String>>,
    next_req_id: u64,
    pub stats: Stats,
}

impl Connector {
    pub fn new(depth: u32, check_instruments: bool) -> Self {
        Self {
            depth,
            check_instruments,
            symbols: BTreeMap::new(),
            pending_ops: HashMap::new(),
            next_req_id: 1,
            stats: Stats::default(),
        }
    }

    pub fn book_topic(&self, symbol: &str) -> String {
        format!("orderbook.{}.{symbol}", self.depth)
    }

    fn topics(&self, symbol: &str) -> [String; 2] {
        [self.book_topic(symbol), format!("publicTrade.{symbol}")]
    }

    fn op(&mut self, op: &'static str, args: Vec<String>) -> WsOp {
        let req_id = self.next_req_id.to_string();
        self.next_req_id += 1;
        self.pending_ops.insert(req_id.clone(), args.clone());
        WsOp { req_id, op, args }
    }

    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.symbols.keys().map(String::as_str)
    }

    /// `LiveRequest::RegisterInstrument` from bot `bot`.
    pub fn register(
        &mut self,
        bot: u64,
        symbol: &str,
        tick_size: f64,
        lot_size: f64,
        local_ts: i64,
    ) -> Outbox {
        let mut out = Outbox::default();
        self.stats.registrations += 1;
        if let Err(reason) = valid_symbol(symbol) {
            error!(bot, symbol, reason, "refused registration: invalid symbol");
            let text = format!("invalid symbol {symbol:?}: {reason}");
            out.error(bot, ErrorKind::Custom(code::INVALID_SYMBOL), &text);
            return out;
        }
        if !(tick_size.is_finite() && tick_size > 0.0 && lot_size.is_finite() && lot_size > 0.0) {
            warn!(
                bot,
                symbol, tick_size, lot_size, "registration with a non-positive tick or lot size"
            );
        }
        info!(bot, symbol, tick_size, lot_size, "bot registers instrument");
        let registration = Registration {
            bot,
            tick_size,
            lot_size,
        };
        if !self.symbols.contains_key(symbol) {
            let spec = if self.check_instruments {
                out.checks.push(symbol.to_string());
                Spec::Fetching
            } else {
                Spec::Unchecked
            };
            let state = SymbolState {
                spec,
                ..SymbolState::default()
            };
            self.symbols.insert(symbol.to_string(), state);
            let topics = self.topics(symbol).to_vec();
            info!(symbol, ?topics, "subscribing");
            let op = self.op("subscribe", topics);
            out.ws.push(op);
        }
        let Some(state) = self.symbols.get_mut(symbol) else {
            return out;
        };
        if !state.bots.contains(&bot) {
            state.bots.push(bot);
        }
        match &state.spec {
            Spec::Unchecked | Spec::Unavailable => {}
            Spec::Fetching => state.awaiting_check.push(registration),
            Spec::Known(spec) => check_sizes(symbol, spec, registration, &mut out),
        }
        if state.book.is_synced() {
            push_batch(symbol, state, bot, local_ts, &mut out);
        } else if !state.awaiting_batch.contains(&bot) {
            info!(
                bot,
                symbol, "book not there yet: registration batch follows the first snapshot"
            );
            state.awaiting_batch.push(bot);
        }
        out
    }

    /// The REST answer for `symbol`'s instrument info.
    pub fn on_instrument(
        &mut self,
        symbol: &str,
        result: Result<InstrumentSpec, RestError>,
    ) -> Outbox {
        let mut out = Outbox::default();
        match result {
            Ok(spec) => {
                let Some(state) = self.symbols.get_mut(symbol) else {
                    return out;
                };
                info!(
                    symbol,
                    tick_size = spec.tick_size,
                    lot_size = spec.lot_size,
                    "instrument info"
                );
                for registration in state.awaiting_check.drain(..) {
                    check_sizes(symbol, &spec, registration, &mut out);
                }
                state.spec = Spec::Known(spec);
            }
            Err(RestError::UnknownSymbol(detail)) => {
                let Some(state) = self.symbols.remove(symbol) else {
                    return out;
                };
                error!(symbol, detail, bots = ?state.bots, "exchange does not know this symbol: dropping it");
                let text = format!("unknown symbol {symbol}: {detail}");
                for bot in &state.bots {
                    out.error(*bot, ErrorKind::Custom(code::UNKNOWN_SYMBOL), &text);
                }
                let op = self.op("unsubscribe", self.topics(symbol).to_vec());
                out.ws.push(op);
            }
            Err(other) => {
                warn!(symbol, error = %other, "cannot check tick/lot size: instrument info unavailable");
                if let Some(state) = self.symbols.get_mut(symbol) {
                    state.awaiting_check.clear();
                    state.spec = Spec::Unavailable;
                }
            }
        }
        out
    }

    /// A new WebSocket connection: subscribe every registered symbol again.
    pub fn on_connect(&mut self) -> Outbox {
        let mut out = Outbox::default();
        self.pending_ops.clear();
        let topics: Vec<String> = self.symbols.keys().flat_map(|s| self.topics(s)).collect();
        for chunk in topics.chunks(TOPICS_PER_REQUEST) {
            let op = self.op("subscribe", chunk.to_vec());
            out.ws.push(op);
        }
        if !topics.is_empty() {
            info!(
                symbols = self.symbols.len(),
                "re-subscribing registered symbols"
            );
        }
        out
    }

    /// The WebSocket connection is gone (or could not be made): books are stale until the next
    /// snapshot, and bots are told.
    pub fn on_disconnect(&mut self, reason: &str) -> Outbox {
        let mut out = Outbox::default();
        for state in self.symbols.values_mut() {
            state.book.invalidate();
            state.resync_since = None;
        }
        self.pending_ops.clear();
        out.error(TO_ALL, ErrorKind::ConnectionInterrupted, reason);
        out
    }

    /// A symbol whose resubscription has not produced a snapshot in time, if any.
    pub fn overdue_resync(&self, now: Instant, timeout: Duration) -> Option<&str> {
        self.symbols
            .iter()
            .find(|(_, s)| {
                s.resync_since
                    .is_some_and(|t| now.duration_since(t) > timeout)
            })
            .map(|(symbol, _)| symbol.as_str())
    }

    /// One text frame from the public stream.
    pub fn on_text(&mut self, text: &str, local_ts: i64, now: Instant) -> Outbox {
        self.stats.messages += 1;
        match parse_frame(text) {
            Ok(Frame::Orderbook(msg)) => self.on_orderbook(msg, local_ts, now),
            Ok(Frame::Trades(msg)) => self.on_trades(msg, local_ts),
            Ok(Frame::Pong) => {
                self.stats.pongs += 1;
                Outbox::default()
            }
            Ok(Frame::Op(op)) => self.on_op(op),
            Err(e) => {
                self.count_bad(&e, text);
                Outbox::default()
            }
        }
    }

    fn count_bad(&mut self, e: &MsgError, text: &str) {
        let (count, what) = if e.is_unknown() {
            self.stats.unknown += 1;
            (self.stats.unknown, "unknown frame")
        } else {
            self.stats.malformed += 1;
            (self.stats.malformed, "malformed frame")
        };
        // The first few in full, then a sample: a broken feed must not flood the log.
        if count <= 10 || count.is_power_of_two() {
            let head: String = text.chars().take(200).collect();
            warn!(error = %e, count, frame = head, "{what}");
        }
    }

    fn on_op(&mut self, op: OpResponse) -> Outbox {
        let mut out = Outbox::default();
        let topics = op
            .req_id
            .as_ref()
            .and_then(|id| self.pending_ops.remove(id));
        if op.success {
            info!(op = op.op, req_id = ?op.req_id, ?topics, "acknowledged");
            return out;
        }
        self.stats.op_failures += 1;
        error!(op = op.op, req_id = ?op.req_id, ret_msg = op.ret_msg, ?topics, "exchange refused request");
        for topic in topics.unwrap_or_default() {
            let symbol = topic.rsplit('.').next().unwrap_or_default();
            if let Some(state) = self.symbols.get(symbol) {
                let text = format!("{} {topic} refused: {}", op.op, op.ret_msg);
                for bot in &state.bots {
                    out.error(*bot, ErrorKind::Custom(code::UNKNOWN_SYMBOL), &text);
                }
            }
        }
        out
    }

    fn on_orderbook(&mut self, msg: OrderbookMsg, local_ts: i64, now: Instant) -> Outbox {
        let mut out = Outbox::default();
        if msg.cts_missing {
            self.stats.missing_cts += 1;
        }
        if msg.depth != self.depth {
            self.stats.unsolicited += 1;
            return out;
        }
        let book_topic = self.book_topic(&msg.symbol);
        let Some(state) = self.symbols.get_mut(&msg.symbol) else {
            self.stats.unsolicited += 1;
            return out;
        };
        let exch_ts = exch_ns(msg.exch_ts_ms, local_ts);
        let symbol = msg.symbol.as_str();
        let to_all = |c: &LevelChange| (TO_ALL, depth_event(symbol, c, exch_ts, local_ts));
        match state.book.apply(&msg) {
            BookUpdate::Delta(changes) => {
                self.stats.deltas += 1;
                state.last_exch_ts = exch_ts;
                // One exchange message, one batch: a bot applies it in one wait_next_feed call (which
                // answers 0 at its end, not between its events) and needs no drain timer to find its end.
                as_one_batch(&mut out, changes.iter().map(to_all));
            }
            BookUpdate::Reset { cause, changes } => {
                self.stats.snapshots += 1;
                state.last_exch_ts = exch_ts;
                match cause {
                    ResetCause::Snapshot => {}
                    ResetCause::StreamRestart => {
                        self.stats.stream_restarts += 1;
                        warn!(
                            symbol,
                            "delta with u=1: Bybit restarted the stream, book overwritten"
                        );
                    }
                }
                if let Some(since) = state.resync_since.take() {
                    info!(
                        symbol,
                        after_ms = now.duration_since(since).as_millis() as u64,
                        "book resynced"
                    );
                }
                let (bids, asks) = state.book.len();
                let deleted = changes.iter().filter(|c| c.qty == 0.0).count();
                let (best_bid, best_ask) = (state.book.best_bid(), state.book.best_ask());
                info!(
                    symbol,
                    u = msg.u,
                    bids,
                    asks,
                    deleted,
                    ?best_bid,
                    ?best_ask,
                    ?cause,
                    "book reset"
                );
                // As one batch, so a bot never acts on a half-replaced book.
                as_one_batch(&mut out, changes.iter().map(to_all));
                for bot in std::mem::take(&mut state.awaiting_batch) {
                    push_batch(symbol, state, bot, local_ts, &mut out);
                }
            }
            BookUpdate::Gap { expected, got } => {
                self.stats.gaps += 1;
                warn!(
                    symbol,
                    expected, got, "gap in orderbook update id: resubscribing for a fresh snapshot"
                );
                state.resync_since = Some(now);
                let unsubscribe = self.op("unsubscribe", vec![book_topic.clone()]);
                let subscribe = self.op("subscribe", vec![book_topic]);
                out.ws.push(unsubscribe);
                out.ws.push(subscribe);
            }
            BookUpdate::Ignored => {
                self.stats.ignored_deltas += 1;
            }
        }
        out
    }

    fn on_trades(&mut self, msg: TradesMsg, local_ts: i64) -> Outbox {
        let mut out = Outbox::default();
        let Some(state) = self.symbols.get_mut(&msg.symbol) else {
            self.stats.unsolicited += 1;
            return out;
        };
        self.stats.trades += msg.trades.len() as u64;
        let first = state.trades_sent;
        state.trades_sent += msg.trades.len() as i64;
        as_one_batch(
            &mut out,
            msg.trades
                .iter()
                .zip(first + 1..)
                .map(|(trade, number)| (TO_ALL, trade_event(&msg.symbol, trade, local_ts, number))),
        );
        out
    }
}

/// Events for every bot as one batch (BatchStart … BatchEnd); nothing when there are none.
fn as_one_batch(out: &mut Outbox, events: impl Iterator<Item = (u64, LiveEvent)>) {
    let start = out.events.len();
    out.events.push((TO_ALL, LiveEvent::BatchStart));
    out.events.extend(events);
    if out.events.len() == start + 1 {
        out.events.truncate(start);
    } else {
        out.events.push((TO_ALL, LiveEvent::BatchEnd));
    }
}

/// BatchStart, every level of the book, BatchEnd, addressed to one bot.
fn push_batch(symbol: &str, state: &SymbolState, bot: u64, local_ts: i64, out: &mut Outbox) {
    let (bids, asks) = state.book.len();
    info!(bot, symbol, bids, asks, "sending registration batch");
    out.events.push((bot, LiveEvent::BatchStart));
    out.events.extend(
        state
            .book
            .levels()
            .map(|c| (bot, depth_event(symbol, &c, state.last_exch_ts, local_ts))),
    );
    out.events.push((bot, LiveEvent::BatchEnd));
}

/// A mismatch is logged loudly and reported to the registering bot; the feed still flows
/// (prices and sizes are the exchange's either way, only the bot's rounding is off).
fn check_sizes(symbol: &str, spec: &InstrumentSpec, reg: Registration, out: &mut Outbox) {
    if !same_step(reg.tick_size, spec.tick_size) {
        error!(
            bot = reg.bot,
            symbol,
            bot_tick_size = reg.tick_size,
            exchange_tick_size = spec.tick_size,
            "TICK SIZE MISMATCH: the bot's book will round prices wrongly"
        );
        let text = format!(
            "{symbol}: tick_size {} but exchange tickSize is {}",
            reg.tick_size, spec.tick_size
        );
        out.error(reg.bot, ErrorKind::Custom(code::TICK_SIZE_MISMATCH), &text);
    }
    if !same_step(reg.lot_size, spec.lot_size) {
        error!(
            bot = reg.bot,
            symbol,
            bot_lot_size = reg.lot_size,
            exchange_lot_size = spec.lot_size,
            "LOT SIZE MISMATCH: the bot's quantities will round wrongly"
        );
        let text = format!(
            "{symbol}: lot_size {} but exchange qtyStep is {}",
            reg.lot_size, spec.lot_size
        );
        out.error(reg.bot, ErrorKind::Custom(code::LOT_SIZE_MISMATCH), &text);
    }
}

/// Equal up to float noise from decimal conversion.
fn same_step(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn valid_symbol(symbol: &str) -> Result<(), &'static str> {
    if symbol.is_empty() {
        return Err("empty");
    }
    if symbol.len() > MAX_SYMBOL_LEN {
        return Err("longer than 32 characters");
    }
    if !symbol
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("only letters, digits, '-' and '_' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hftbacktest::types::{
        Event, LOCAL_ASK_DEPTH_EVENT, LOCAL_BID_DEPTH_EVENT, LOCAL_BUY_TRADE_EVENT, LiveError,
    };

    use super::*;

    const BOT: u64 = 77;
    const OTHER: u64 = 88;

    type Levels<'a> = &'a [(&'a str, &'a str)];

    fn snapshot(u: u64, bids: Levels, asks: Levels) -> String {
        book_frame("snapshot", u, bids, asks)
    }

    fn delta(u: u64, bids: Levels, asks: Levels) -> String {
        book_frame("delta", u, bids, asks)
    }

    include!("../tests/support/frames.rs");

    /// BOT registered for BTCUSDT (no REST check), then one snapshot with update id `u`.
    fn synced(u: u64, bids: Levels, asks: Levels) -> Connector {
        let mut c = Connector::new(50, false);
        c.register(BOT, "BTCUSDT", 0.1, 0.001, 5);
        c.on_text(&snapshot(u, bids, asks), 9, now());
        c
    }

    type Feed = (u64, u64, f64, f64);

    /// What [`feeds`] shows for depth events to `id`: these bids, then these asks.
    fn levels(id: u64, bids: &[(f64, f64)], asks: &[(f64, f64)]) -> Vec<Feed> {
        let bids = bids
            .iter()
            .map(|&(px, qty)| (id, LOCAL_BID_DEPTH_EVENT, px, qty));
        let asks = asks
            .iter()
            .map(|&(px, qty)| (id, LOCAL_ASK_DEPTH_EVENT, px, qty));
        bids.chain(asks).collect()
    }

    fn feeds(out: &Outbox) -> Vec<Feed> {
        out.events
            .iter()
            .filter_map(|(id, ev)| match ev {
                LiveEvent::Feed {
                    event: Event { ev, px, qty, .. },
                    ..
                } => Some((*id, *ev, *px, *qty)),
                _ => None,
            })
            .collect()
    }

    /// The `i`th event, which must be a feed.
    fn feed_event(out: &Outbox, i: usize) -> &Event {
        match &out.events[i].1 {
            LiveEvent::Feed { event, .. } => event,
            other => panic!("event {i} is not a feed: {other:?}"),
        }
    }

    fn kinds(out: &Outbox) -> Vec<(u64, &'static str)> {
        out.events
            .iter()
            .map(|(id, ev)| {
                let k = match ev {
                    LiveEvent::BatchStart => "start",
                    LiveEvent::BatchEnd => "end",
                    LiveEvent::Feed { .. } => "feed",
                    LiveEvent::Order { .. } => "order",
                    LiveEvent::Position { .. } => "position",
                    LiveEvent::Error(_) => "error",
                };
                (*id, k)
            })
            .collect()
    }

    /// What [`kinds`] shows for a batch of `levels` feeds to `id`.
    fn batch(id: u64, levels: usize) -> Vec<(u64, &'static str)> {
        let feeds = std::iter::repeat_n((id, "feed"), levels);
        [(id, "start")]
            .into_iter()
            .chain(feeds)
            .chain([(id, "end")])
            .collect()
    }

    fn errors(out: &Outbox) -> Vec<(u64, ErrorKind, String)> {
        out.events
            .iter()
            .filter_map(|(id, ev)| match ev {
                LiveEvent::Error(LiveError { kind, value }) => {
                    Some((*id, *kind, value.get_str().unwrap_or_default().to_string()))
                }
                _ => None,
            })
            .collect()
    }

    fn error_kinds(out: &Outbox) -> Vec<(u64, ErrorKind)> {
        errors(out)
            .into_iter()
            .map(|(id, kind, _)| (id, kind))
            .collect()
    }

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn registration_before_the_book_subscribes_then_batches_on_snapshot() {
        let mut c = Connector::new(50, false);
        let out = c.register(BOT, "BTCUSDT", 0.1, 0.001, 5);
        assert_eq!(out.ws.len(), 1);
        assert_eq!(out.ws[0].op, "subscribe");
        let topics = ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"];
        assert_eq!(out.ws[0].args, topics);
        assert!(out.events.is_empty(), "no book yet, so no batch yet");

        let frame = snapshot(10, &[("100.0", "1")], &[("100.5", "2")]);
        let out = c.on_text(&frame, 9, now());
        // The reset goes to everyone as a batch, then the waiting bot gets its own batch.
        assert_eq!(kinds(&out), [batch(TO_ALL, 2), batch(BOT, 2)].concat());
        let f = feeds(&out);
        assert_eq!(f[2..], levels(BOT, &[(100.0, 1.0)], &[(100.5, 2.0)]));
        let event = feed_event(&out, 5);
        assert_eq!(event.exch_ts, 1_700_000_000_000_000_000, "exch_ts from cts");
        assert_eq!(event.local_ts, 9);
    }

    #[test]
    fn registration_with_a_book_is_answered_at_once_and_only_to_that_bot() {
        let mut c = synced(10, &[("100.0", "1"), ("99.9", "3")], &[("100.5", "2")]);
        let out = c.register(OTHER, "BTCUSDT", 0.1, 0.001, 11);
        assert!(out.ws.is_empty(), "already subscribed");
        assert_eq!(kinds(&out), batch(OTHER, 3));
        let want = levels(OTHER, &[(100.0, 1.0), (99.9, 3.0)], &[(100.5, 2.0)]);
        assert_eq!(feeds(&out), want);
    }

    #[test]
    fn deltas_and_trades_stream_to_all() {
        let mut c = synced(10, &[("100.0", "1")], &[("100.5", "2")]);
        let out = c.on_text(&delta(11, &[("100.0", "0"), ("99.8", "4")], &[]), 12, now());
        assert_eq!(
            feeds(&out),
            levels(TO_ALL, &[(100.0, 0.0), (99.8, 4.0)], &[])
        );
        assert_eq!(
            kinds(&out),
            batch(TO_ALL, 2),
            "one exchange message, one batch"
        );
        let trades = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1700000000123,"s":"BTCUSDT","S":"Buy","v":"0.5","p":"100.5","L":"PlusTick","i":"a","BT":false},{"T":1700000000124,"s":"BTCUSDT","S":"Sell","v":"0.1","p":"100.0","L":"MinusTick","i":"b","BT":false}]}"#;
        let out = c.on_text(trades, 13, now());
        assert_eq!(kinds(&out), batch(TO_ALL, 2));
        let f = feeds(&out);
        assert_eq!(f[0], (TO_ALL, LOCAL_BUY_TRADE_EVENT, 100.5, 0.5));
        assert_eq!(
            feed_event(&out, 1).exch_ts,
            1_700_000_000_123_000_000,
            "exch_ts from T"
        );
        assert_eq!(c.stats.trades, 2);
        let out = c.on_text(trades, 14, now());
        let numbers: Vec<i64> = (1..3).map(|i| feed_event(&out, i).ival).collect();
        assert_eq!(
            numbers,
            [3, 4],
            "trades are numbered per symbol, on from the last message"
        );
    }

    #[test]
    fn gap_resubscribes_and_the_fresh_snapshot_deletes_vanished_levels() {
        let mut c = synced(10, &[("100.0", "1"), ("99.0", "1")], &[("101.0", "2")]);
        let t0 = now();
        let out = c.on_text(&delta(12, &[("100.0", "5")], &[]), 12, t0);
        assert!(out.events.is_empty());
        let ops: Vec<_> = out.ws.iter().map(|o| (o.op, o.args.clone())).collect();
        let topic = vec!["orderbook.50.BTCUSDT".to_string()];
        assert_eq!(ops, [("unsubscribe", topic.clone()), ("subscribe", topic)]);
        assert_eq!(c.stats.gaps, 1);
        let (late, timeout) = (t0 + Duration::from_secs(11), Duration::from_secs(10));
        assert!(c.overdue_resync(late, timeout).is_some());
        // Deltas in between are dropped.
        let out = c.on_text(&delta(13, &[("1", "1")], &[]), 13, now());
        assert!(out.events.is_empty());
        let frame = snapshot(90, &[("100.0", "2")], &[("101.0", "2")]);
        let out = c.on_text(&frame, 14, now());
        let want = levels(TO_ALL, &[(99.0, 0.0), (100.0, 2.0)], &[(101.0, 2.0)]);
        assert_eq!(feeds(&out), want);
        assert!(c.overdue_resync(late, timeout).is_none());
    }

    #[test]
    fn delta_with_u_1_overwrites_the_book() {
        let mut c = synced(500, &[("100.0", "1")], &[("101.0", "2")]);
        let out = c.on_text(&delta(1, &[("99.0", "1")], &[("101.0", "2")]), 10, now());
        assert!(out.ws.is_empty(), "a restart is not a gap");
        let want = levels(TO_ALL, &[(100.0, 0.0), (99.0, 1.0)], &[(101.0, 2.0)]);
        assert_eq!(feeds(&out), want);
        assert_eq!(c.stats.stream_restarts, 1);
        assert_eq!(c.stats.gaps, 0);
    }

    #[test]
    fn disconnect_tells_bots_and_reconnect_resubscribes_everything() {
        let mut c = Connector::new(200, false);
        for s in ["AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT", "FUSDT"] {
            c.register(BOT, s, 0.1, 1.0, 1);
        }
        let out = c.on_disconnect("connection reset");
        let kind = ErrorKind::ConnectionInterrupted;
        assert_eq!(errors(&out), [(TO_ALL, kind, "connection reset".into())]);
        let out = c.on_connect();
        let topics: Vec<String> = out.ws.iter().flat_map(|o| o.args.clone()).collect();
        assert_eq!(topics.len(), 12);
        assert!(topics.contains(&"orderbook.200.FUSDT".to_string()));
        let chunked = |o: &WsOp| o.op == "subscribe" && o.args.len() <= TOPICS_PER_REQUEST;
        assert!(out.ws.iter().all(chunked));
        // A bot registering while the book is stale waits for the next snapshot.
        let out = c.register(OTHER, "AUSDT", 0.1, 1.0, 2);
        assert!(out.events.is_empty());
    }

    #[test]
    fn tick_and_lot_mismatch_are_reported_to_the_registering_bot() {
        let mut c = Connector::new(50, true);
        let out = c.register(BOT, "BTCUSDT", 0.5, 0.001, 1);
        assert_eq!(out.checks, ["BTCUSDT"]);
        let spec = InstrumentSpec {
            tick_size: 0.1,
            lot_size: 0.001,
        };
        let out = c.on_instrument("BTCUSDT", Ok(spec));
        let tick = ErrorKind::Custom(code::TICK_SIZE_MISMATCH);
        assert_eq!(error_kinds(&out), [(BOT, tick)]);
        let text = &errors(&out)[0].2;
        assert!(text.contains("0.5") && text.contains("0.1"), "{text}");
        // Later registrations are checked at once against the known spec.
        let out = c.register(OTHER, "BTCUSDT", 0.1, 0.01, 2);
        assert!(out.checks.is_empty());
        let lot = ErrorKind::Custom(code::LOT_SIZE_MISMATCH);
        assert_eq!(error_kinds(&out), [(OTHER, lot)]);
        let out = c.register(3, "BTCUSDT", 0.1, 0.001, 2);
        assert!(errors(&out).is_empty());
    }

    #[test]
    fn unknown_symbol_is_an_error_event_and_the_symbol_is_dropped() {
        let mut c = Connector::new(50, true);
        c.register(BOT, "NOPEUSDT", 0.1, 1.0, 1);
        let unknown = Err(RestError::UnknownSymbol("empty list".into()));
        let out = c.on_instrument("NOPEUSDT", unknown);
        let kind = ErrorKind::Custom(code::UNKNOWN_SYMBOL);
        assert_eq!(error_kinds(&out), [(BOT, kind)]);
        assert_eq!(out.ws[0].op, "unsubscribe");
        assert_eq!(c.symbols().count(), 0);
        // It can be registered again later (and is checked again).
        assert_eq!(c.register(BOT, "NOPEUSDT", 0.1, 1.0, 1).checks.len(), 1);
    }

    #[test]
    fn invalid_symbol_is_refused_without_subscribing() {
        let mut c = Connector::new(50, true);
        for bad in ["", "BTC USDT", "BTC/USDT", &"X".repeat(40)] {
            let out = c.register(BOT, bad, 0.1, 1.0, 1);
            assert!(out.ws.is_empty() && out.checks.is_empty(), "{bad}");
            assert_eq!(errors(&out)[0].1, ErrorKind::Custom(code::INVALID_SYMBOL));
        }
    }

    #[test]
    fn refused_subscription_is_reported_to_the_symbols_bots() {
        let mut c = Connector::new(50, false);
        let out = c.register(BOT, "BTCUSDT", 0.1, 1.0, 1);
        let req_id = out.ws[0].req_id.clone();
        let ack = format!(
            r#"{{"success":false,"ret_msg":"error:handler not found","conn_id":"x","req_id":"{req_id}","op":"subscribe"}}"#
        );
        let out = c.on_text(&ack, 2, now());
        let e = errors(&out);
        assert_eq!(e.len(), 2, "one per topic");
        assert!(
            e.iter()
                .all(|e| e.0 == BOT && e.2.contains("handler not found"))
        );
        assert_eq!(c.stats.op_failures, 1);
    }

    #[test]
    fn bad_frames_are_counted_not_fatal() {
        let mut c = Connector::new(50, false);
        c.register(BOT, "BTCUSDT", 0.1, 1.0, 1);
        assert!(c.on_text("garbage", 1, now()).events.is_empty());
        let ticker = r#"{"topic":"tickers.BTCUSDT","data":{}}"#;
        assert!(c.on_text(ticker, 1, now()).events.is_empty());
        // No cts: still applied, exch_ts from ts.
        let no_cts = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1700000000001,"data":{"s":"BTCUSDT","b":[["1","1"]],"a":[],"u":3}}"#;
        let out = c.on_text(no_cts, 1, now());
        assert_eq!(feed_event(&out, 1).exch_ts, 1_700_000_000_001_000_000);
        // A symbol nobody registered is not forwarded.
        let other = r#"{"topic":"orderbook.50.ETHUSDT","type":"snapshot","ts":1,"data":{"s":"ETHUSDT","b":[],"a":[],"u":3},"cts":1}"#;
        assert!(c.on_text(other, 1, now()).events.is_empty());
        let s = &c.stats;
        assert_eq!((s.malformed, s.unknown, s.missing_cts), (1, 1, 1));
        assert_eq!((s.unsolicited, s.messages), (1, 4));
    }
}

//! The order desk, free of I/O: turns a bot's order requests into Bybit trade-stream requests
//! after the safety checks, and Bybit's order, execution and position updates into the bot's
//! order and position events. The event loop in `link` carries out what each input returns.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

use hftbacktest::{
    live::ipc::TO_ALL,
    types::{ErrorKind, LiveEvent, OrdType, Order, Side, Status, TimeInForce},
};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::msg::{Execution, OrderUpdate, PositionUpdate, PrivateFrame};
use crate::events::{code, error_event};

/// Bybit's limit on `orderLinkId`.
const MAX_LINK_ID: usize = 36;

/// Limits enforced here whatever the bot does; quantities in the symbol's units.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_order_qty: f64,
    pub max_position: f64,
    pub max_open_orders: usize,
    pub max_orders_per_s: f64,
}

/// A trade-stream request: `{"reqId", "header", "op", "args": [args]}`.
#[derive(Clone, Debug, PartialEq)]
pub struct TradeOp {
    pub req_id: String,
    pub op: &'static str,
    pub args: Value,
}

/// What one input asks the link to do.
#[derive(Debug, Default)]
pub struct DeskOut {
    pub events: Vec<(u64, LiveEvent)>,
    pub ops: Vec<TradeOp>,
    /// Orders to look up over REST by orderLinkId: they left the open list while we were away.
    pub lookups: Vec<(String, String)>,
    /// Symbols to clear with REST `POST /v5/order/cancel-all` (the kill switch).
    pub cancel_all: Vec<String>,
}

impl DeskOut {
    fn error(&mut self, bot: u64, kind: ErrorKind, text: &str) {
        self.events.push((bot, error_event(kind, text)));
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeskStats {
    pub creates_sent: u64,
    pub cancels_sent: u64,
    pub refused: u64,
    pub exchange_rejects: u64,
    pub fills: u64,
    pub duplicate_fills: u64,
    pub foreign_orders: u64,
    pub stale_updates: u64,
}

#[derive(Debug)]
struct Tracked {
    bot: u64,
    symbol: String,
    order: Order,
    /// What the bot has been told was executed, to hand it only the new part of each fill.
    cum_exec_qty: f64,
    cum_exec_value: f64,
    /// On the exchange or on its way there.
    open: bool,
}

#[derive(Clone, Debug, Default)]
struct Position {
    qty: f64,
    /// Fills the order stream reported since the last position push (signed): the exchange
    /// sends the order update first, so until the position catches up they count here.
    unsettled: f64,
    avg_price: f64,
    realised_pnl: f64,
    fills: u64,
    updated_ms: i64,
}

pub struct Desk {
    category: String,
    prefix: String,
    limits: Limits,
    /// Why orders cannot be taken at all (no keys, keys refused); None when trading is configured.
    off: Option<String>,
    /// Connected, authenticated, subscribed and reconciled.
    ready: bool,
    lookups_pending: usize,
    killed: bool,
    orders: HashMap<String, Tracked>,
    sent_links: HashSet<String>,
    pending: HashMap<String, String>,
    positions: BTreeMap<String, Position>,
    exec_ids: HashSet<String>,
    recent_creates: VecDeque<Instant>,
    /// Tick sizes bots registered, per symbol (orders adopted from REST carry none).
    ticks: HashMap<String, f64>,
    /// Cancels sent and not answered, by link: one at a time per order.
    cancelling: HashSet<String>,
    wallet_usdt: Option<f64>,
    next_req: u64,
    pub stats: DeskStats,
}

impl Desk {
    pub fn new(category: &str, prefix: &str, limits: Limits, off: Option<String>) -> Self {
        Self {
            category: category.to_string(),
            prefix: prefix.to_string(),
            limits,
            off,
            ready: false,
            lookups_pending: 0,
            killed: false,
            orders: HashMap::new(),
            sent_links: HashSet::new(),
            pending: HashMap::new(),
            positions: BTreeMap::new(),
            exec_ids: HashSet::new(),
            recent_creates: VecDeque::new(),
            ticks: HashMap::new(),
            cancelling: HashSet::new(),
            wallet_usdt: None,
            next_req: 1,
            stats: DeskStats::default(),
        }
    }

    pub fn link_id(&self, order_id: u64) -> String {
        format!("{}{order_id}", self.prefix)
    }

    fn order_id_of(&self, link: &str) -> Option<u64> {
        link.strip_prefix(&self.prefix)?.parse().ok()
    }

    pub fn is_ready(&self) -> bool {
        self.ready && self.lookups_pending == 0 && self.off.is_none()
    }

    fn op(&mut self, op: &'static str, link: &str, args: Value) -> TradeOp {
        let req_id = format!("{}r{}", self.prefix, self.next_req);
        self.next_req += 1;
        self.pending.insert(req_id.clone(), link.to_string());
        TradeOp { req_id, op, args }
    }

    /// `LiveRequest::Order` from bot `bot`: a new order or a cancel.
    pub fn request(
        &mut self,
        bot: u64,
        symbol: &str,
        order: &Order,
        now: Instant,
        local_ts: i64,
    ) -> DeskOut {
        let mut out = DeskOut::default();
        match order.req {
            Status::New => self.create(bot, symbol, order, now, local_ts, &mut out),
            Status::Canceled => self.cancel(bot, symbol, order, local_ts, &mut out),
            other => {
                let why = format!("order request {other:?} is not supported (only new and cancel)");
                self.refuse(bot, symbol, order, &why, local_ts, &mut out);
            }
        }
        out
    }

    fn refuse(
        &mut self,
        bot: u64,
        symbol: &str,
        order: &Order,
        why: &str,
        local_ts: i64,
        out: &mut DeskOut,
    ) {
        self.stats.refused += 1;
        warn!(bot, symbol, order_id = order.order_id, why, "order refused");
        out.error(
            bot,
            ErrorKind::OrderError,
            &format!("order {} refused: {why}", order.order_id),
        );
        let mut echo = order.clone();
        if order.req == Status::New {
            echo.status = Status::Rejected;
            echo.leaves_qty = 0.0;
        }
        echo.req = Status::None;
        echo.local_timestamp = local_ts;
        out.events.push((
            bot,
            LiveEvent::Order {
                symbol: symbol.to_string(),
                order: echo,
            },
        ));
    }

    /// Why a new order may not go out, checked in this order.
    fn check(
        &mut self,
        symbol: &str,
        order: &Order,
        link: &str,
        now: Instant,
    ) -> Result<(), String> {
        if let Some(off) = &self.off {
            return Err(off.clone());
        }
        if self.killed {
            return Err("kill switch engaged: restart the connector to trade again".into());
        }
        if !self.is_ready() {
            return Err("trading link not ready (connecting or reconciling)".into());
        }
        if link.len() > MAX_LINK_ID {
            return Err(format!(
                "orderLinkId {link} is longer than {MAX_LINK_ID} characters"
            ));
        }
        if self.sent_links.contains(link) {
            return Err(format!(
                "order id {} was already used (orderLinkId {link})",
                order.order_id
            ));
        }
        let valid = order.qty.is_finite() && order.qty > 0.0;
        if !valid || order.qty > self.limits.max_order_qty * (1.0 + 1e-9) {
            return Err(format!(
                "qty {} outside (0, max_order_qty {}]",
                order.qty, self.limits.max_order_qty
            ));
        }
        if order.order_type == OrdType::Limit && order.price_tick <= 0 {
            return Err("limit order without a positive price".into());
        }
        let open: Vec<&Tracked> = self
            .orders
            .values()
            .filter(|t| t.open && t.symbol == symbol)
            .collect();
        if open.len() >= self.limits.max_open_orders {
            return Err(format!(
                "{} open orders already (max_open_orders)",
                open.len()
            ));
        }
        let position = self
            .positions
            .get(symbol)
            .map_or(0.0, |p| p.qty + p.unsettled);
        let same_side: f64 = open
            .iter()
            .filter(|t| t.order.side == order.side)
            .map(|t| t.order.leaves_qty)
            .sum();
        let exposure = match order.side {
            Side::Buy => position + same_side + order.qty,
            _ => -position + same_side + order.qty,
        };
        if exposure > self.limits.max_position * (1.0 + 1e-9) {
            return Err(format!(
                "position could reach {exposure:.8} with open orders, above max_position {}",
                self.limits.max_position
            ));
        }
        while self
            .recent_creates
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent_creates.pop_front();
        }
        if self.recent_creates.len() as f64 >= self.limits.max_orders_per_s {
            return Err(format!(
                "order rate above max_orders_per_s {}",
                self.limits.max_orders_per_s
            ));
        }
        Ok(())
    }

    fn create(
        &mut self,
        bot: u64,
        symbol: &str,
        order: &Order,
        now: Instant,
        local_ts: i64,
        out: &mut DeskOut,
    ) {
        let link = self.link_id(order.order_id);
        if let Err(why) = self.check(symbol, order, &link, now) {
            return self.refuse(bot, symbol, order, &why, local_ts, out);
        }
        let side = match order.side {
            Side::Buy => "Buy",
            Side::Sell => "Sell",
            _ => {
                return self.refuse(
                    bot,
                    symbol,
                    order,
                    "side must be buy or sell",
                    local_ts,
                    out,
                );
            }
        };
        let tif = match order.time_in_force {
            TimeInForce::GTC => "GTC",
            TimeInForce::GTX => "PostOnly",
            TimeInForce::FOK => "FOK",
            TimeInForce::IOC => "IOC",
            TimeInForce::Unsupported => {
                return self.refuse(
                    bot,
                    symbol,
                    order,
                    "unsupported time in force",
                    local_ts,
                    out,
                );
            }
        };
        let mut args = json!({
            "category": self.category, "symbol": symbol, "side": side,
            "qty": decimal(order.qty), "timeInForce": tif, "orderLinkId": link,
        });
        match order.order_type {
            OrdType::Limit => {
                args["orderType"] = "Limit".into();
                args["price"] = decimal(order.price_tick as f64 * order.tick_size).into();
            }
            OrdType::Market => args["orderType"] = "Market".into(),
            OrdType::Unsupported => {
                return self.refuse(bot, symbol, order, "unsupported order type", local_ts, out);
            }
        }
        self.recent_creates.push_back(now);
        self.sent_links.insert(link.clone());
        let mut tracked = order.clone();
        tracked.req = Status::New;
        self.orders.insert(
            link.clone(),
            Tracked {
                bot,
                symbol: symbol.to_string(),
                order: tracked,
                cum_exec_qty: 0.0,
                cum_exec_value: 0.0,
                open: true,
            },
        );
        self.stats.creates_sent += 1;
        info!(bot, symbol, link, side, qty = order.qty, "order.create");
        let op = self.op("order.create", &link, args);
        out.ops.push(op);
    }

    fn cancel(&mut self, bot: u64, symbol: &str, order: &Order, local_ts: i64, out: &mut DeskOut) {
        let link = self.link_id(order.order_id);
        let open = self.orders.get(&link).is_some_and(|t| t.open);
        if self.off.is_some() || !open || !self.ready {
            // Not sent: tell the bot where the order stands (as the desk knows it) so its wait ends.
            let why = match (open, self.ready) {
                (false, _) => "no open order with this id",
                (true, false) => "trading link not ready: try again",
                (true, true) => "trading is off",
            };
            let mut shown = self
                .orders
                .get(&link)
                .map_or_else(|| order.clone(), |t| t.order.clone());
            shown.req = Status::Canceled; // a refused cancel: the order itself stands as it was
            return self.refuse(bot, symbol, &shown, why, local_ts, out);
        }
        if self.cancelling.contains(&link) {
            return; // already on its way: the order stream answers both
        }
        out.ops.push(self.cancel_op(&link));
    }

    fn cancel_op(&mut self, link: &str) -> TradeOp {
        self.stats.cancels_sent += 1;
        self.cancelling.insert(link.to_string());
        let symbol = self
            .orders
            .get(link)
            .map(|t| t.symbol.clone())
            .unwrap_or_default();
        let args = json!({"category": self.category, "symbol": symbol, "orderLinkId": link});
        self.op("order.cancel", link, args)
    }

    /// The kill switch: refuse new orders from now on, and clear every symbol the desk has dealt
    /// in with one REST cancel-all each (it needs no trade stream, and catches orders the desk
    /// never heard of); [`Desk::on_cancel_all`] then cancels over the trade stream what it missed.
    pub fn kill(&mut self) -> DeskOut {
        let mut out = DeskOut::default();
        if !self.killed {
            error!("KILL SWITCH: cancelling every open order, refusing new ones");
            out.error(
                TO_ALL,
                ErrorKind::Custom(code::KILL_SWITCH),
                "kill switch engaged: orders cancelled, new orders refused",
            );
        }
        self.killed = true;
        if self.off.is_some() {
            return out; // no keys, or keys refused: nothing was sent, and REST would be refused
        }
        let symbols: BTreeSet<&String> = self
            .orders
            .values()
            .map(|t| &t.symbol)
            .chain(self.ticks.keys())
            .chain(self.positions.keys())
            .collect();
        out.cancel_all = symbols.into_iter().cloned().collect();
        out
    }

    /// The answer to one symbol's cancel-all: the orderLinkIds it cancelled, or why it failed.
    /// Orders of ours it did not list (a create still on its way, or the whole request failed)
    /// are cancelled one by one over the trade stream, or after the next reconcile.
    pub fn on_cancel_all(&mut self, symbol: &str, answer: Result<Vec<String>, String>) -> DeskOut {
        let mut out = DeskOut::default();
        let listed: HashSet<String> = match answer {
            Ok(links) => {
                info!(
                    symbol,
                    cancelled = links.len(),
                    "kill switch: cancel-all answered"
                );
                links.into_iter().collect()
            }
            Err(e) => {
                error!(symbol, error = %e, "kill switch: cancel-all failed; cancelling order by order");
                HashSet::new()
            }
        };
        if !self.ready {
            return out; // the reconcile after the next connect cancels what is open
        }
        out.ops = self.cancel_open(|l, t| t.symbol == symbol && !listed.contains(l));
        out
    }

    fn cancel_all_open(&mut self) -> Vec<TradeOp> {
        self.cancel_open(|_, _| true)
    }

    /// Cancels, in link order, the open orders `which` picks that have no cancel on its way.
    fn cancel_open(&mut self, which: impl Fn(&str, &Tracked) -> bool) -> Vec<TradeOp> {
        let mut links: Vec<String> = self
            .orders
            .iter()
            .filter(|(l, t)| t.open && !self.cancelling.contains(*l) && which(l, t))
            .map(|(l, _)| l.clone())
            .collect();
        links.sort();
        links.iter().map(|l| self.cancel_op(l)).collect()
    }

    /// A bot registered `symbol`: it gets the open orders and the position the desk knows.
    pub fn register(&mut self, bot: u64, symbol: &str, tick_size: f64) -> DeskOut {
        let mut out = DeskOut::default();
        if let Some(off) = &self.off {
            info!(
                bot,
                symbol,
                reason = off.as_str(),
                "bot registered: orders will be refused"
            );
            return out;
        }
        if tick_size.is_finite() && tick_size > 0.0 {
            self.ticks.insert(symbol.to_string(), tick_size);
        }
        // A bot that registers now (a restarted one, most often) takes over the symbol's open
        // orders: their updates go to it, and adopted ones get its tick size.
        for t in self
            .orders
            .values_mut()
            .filter(|t| t.open && t.symbol == symbol)
        {
            t.bot = bot;
            if tick_size.is_finite() && tick_size > 0.0 && t.order.tick_size != tick_size {
                let price = t.order.price_tick as f64 * t.order.tick_size;
                t.order.price_tick = (price / tick_size).round() as i64;
                t.order.tick_size = tick_size;
            }
            out.events.push((
                bot,
                LiveEvent::Order {
                    symbol: symbol.to_string(),
                    order: t.order.clone(),
                },
            ));
        }
        if let Some(p) = self.positions.get(symbol) {
            out.events.push((
                bot,
                LiveEvent::Position {
                    symbol: symbol.to_string(),
                    qty: p.qty,
                    exch_ts: 0,
                },
            ));
        }
        out
    }

    /// The private or trade stream's connection is gone: no new orders until reconciled again.
    pub fn on_link_down(&mut self, reason: &str) -> DeskOut {
        let mut out = DeskOut::default();
        if self.ready {
            out.error(
                TO_ALL,
                ErrorKind::Custom(code::TRADING_DOWN),
                &format!("trading link down: {reason}"),
            );
        }
        self.ready = false;
        self.pending.clear();
        self.cancelling.clear();
        out
    }

    /// Keys refused by the exchange: trading stops for good (no retry storm).
    pub fn switch_off(&mut self, reason: &str) -> DeskOut {
        let mut out = DeskOut::default();
        self.off = Some(reason.to_string());
        self.ready = false;
        out.error(TO_ALL, ErrorKind::Custom(code::TRADING_DOWN), reason);
        out
    }

    /// The REST view after (re)connecting: open orders and positions. Orders we thought open that
    /// are gone are looked up one by one; until then, and until this returns, no new orders.
    pub fn reconcile(
        &mut self,
        open: Vec<OrderUpdate>,
        positions: Vec<PositionUpdate>,
        local_ts: i64,
    ) -> DeskOut {
        let mut out = DeskOut::default();
        let listed: HashSet<String> = open.iter().map(|o| o.order_link_id.clone()).collect();
        for update in open {
            self.on_order(update, local_ts, &mut out);
        }
        let mut gone: Vec<(String, String)> = self
            .orders
            .iter()
            .filter(|(link, t)| t.open && !listed.contains(*link))
            .map(|(link, t)| (t.symbol.clone(), link.clone()))
            .collect();
        gone.sort();
        self.lookups_pending = gone.len();
        out.lookups = gone;
        // Listed by settleCoin, the exchange leaves out flat positions: a known one not listed is 0.
        let listed_symbols: HashSet<String> = positions.iter().map(|p| p.symbol.clone()).collect();
        for p in positions {
            self.on_position(p, &mut out);
        }
        let flat: Vec<String> = self
            .positions
            .iter()
            .filter(|(symbol, p)| {
                !listed_symbols.contains(*symbol) && (p.qty != 0.0 || p.unsettled != 0.0)
            })
            .map(|(symbol, _)| symbol.clone())
            .collect();
        for symbol in flat {
            let pos = self.positions.entry(symbol.clone()).or_default();
            (pos.qty, pos.unsettled) = (0.0, 0.0);
            out.events.push((
                TO_ALL,
                LiveEvent::Position {
                    symbol,
                    qty: 0.0,
                    exch_ts: 0,
                },
            ));
        }
        self.ready = true;
        let open_count = self.orders.values().filter(|t| t.open).count();
        info!(
            open_orders = open_count,
            lookups = self.lookups_pending,
            "reconciled with the exchange"
        );
        if self.killed {
            out.ops = self.cancel_all_open();
        }
        out
    }

    /// The REST answer for one looked-up order (Ok(None): the exchange never had it; Err: the
    /// lookup failed, and the order stays as it was).
    pub fn on_lookup(
        &mut self,
        link: &str,
        found: Result<Option<OrderUpdate>, String>,
        local_ts: i64,
    ) -> DeskOut {
        let mut out = DeskOut::default();
        self.lookups_pending = self.lookups_pending.saturating_sub(1);
        match found {
            Err(e) => warn!(
                link,
                error = e,
                "order lookup failed: its state is unknown until it updates"
            ),
            Ok(Some(update)) => self.on_order(update, local_ts, &mut out),
            Ok(None) => {
                if let Some(t) = self.orders.get_mut(link) {
                    warn!(link, "order unknown to the exchange: it never arrived");
                    t.open = false;
                    t.order.status = Status::Rejected;
                    t.order.req = Status::None;
                    t.order.leaves_qty = 0.0;
                    t.order.local_timestamp = local_ts;
                    out.events.push((
                        t.bot,
                        LiveEvent::Order {
                            symbol: t.symbol.clone(),
                            order: t.order.clone(),
                        },
                    ));
                }
            }
        }
        out
    }

    /// A frame from the private or the trade stream.
    pub fn on_frame(&mut self, frame: PrivateFrame, local_ts: i64) -> DeskOut {
        let mut out = DeskOut::default();
        match frame {
            PrivateFrame::Orders(updates) => {
                for u in updates {
                    self.on_order(u, local_ts, &mut out);
                }
            }
            PrivateFrame::Executions(execs) => {
                for e in execs {
                    self.on_execution(e);
                }
            }
            PrivateFrame::Positions(positions) => {
                for p in positions {
                    self.on_position(p, &mut out);
                }
            }
            PrivateFrame::Wallet(balance) => self.wallet_usdt = balance.or(self.wallet_usdt),
            PrivateFrame::TradeReply {
                req_id,
                op,
                code,
                msg,
            } => self.on_reply(req_id, &op, code, &msg, local_ts, &mut out),
            PrivateFrame::Op { .. } | PrivateFrame::Other => {}
        }
        out
    }

    fn on_reply(
        &mut self,
        req_id: Option<String>,
        op: &str,
        code: i64,
        msg: &str,
        local_ts: i64,
        out: &mut DeskOut,
    ) {
        let Some(link) = req_id.and_then(|id| self.pending.remove(&id)) else {
            return;
        };
        if code == 0 {
            return; // accepted: the order stream says what happened
        }
        self.cancelling.remove(&link);
        let Some(t) = self.orders.get_mut(&link) else {
            return;
        };
        self.stats.exchange_rejects += 1;
        warn!(link, op, code, msg, "exchange refused the request");
        let text = format!("{op} {link} refused by the exchange: {code} {msg}");
        out.error(t.bot, ErrorKind::OrderError, &text);
        if op == "order.create" {
            t.open = false;
            t.order.status = Status::Rejected;
            t.order.leaves_qty = 0.0;
        }
        t.order.req = Status::None;
        t.order.local_timestamp = local_ts;
        out.events.push((
            t.bot,
            LiveEvent::Order {
                symbol: t.symbol.clone(),
                order: t.order.clone(),
            },
        ));
    }

    fn on_order(&mut self, u: OrderUpdate, local_ts: i64, out: &mut DeskOut) {
        let Some(order_id) = self.order_id_of(&u.order_link_id) else {
            self.stats.foreign_orders += 1;
            return;
        };
        let status = status_of(&u.order_status);
        let known_tick = self.ticks.get(&u.symbol).copied();
        let t = self
            .orders
            .entry(u.order_link_id.clone())
            .or_insert_with(|| {
                info!(
                    link = u.order_link_id,
                    status = u.order_status,
                    "adopting an order this connector did not send (earlier run)"
                );
                let side = if u.side == "Sell" {
                    Side::Sell
                } else {
                    Side::Buy
                };
                let kind = if u.order_type == "Market" {
                    OrdType::Market
                } else {
                    OrdType::Limit
                };
                let tif = match u.time_in_force.as_str() {
                    "PostOnly" => TimeInForce::GTX,
                    "IOC" => TimeInForce::IOC,
                    "FOK" => TimeInForce::FOK,
                    _ => TimeInForce::GTC,
                };
                // The tick size is not on the wire: the registered one, else a power of ten that
                // keeps the price exact.
                let tick = known_tick.unwrap_or_else(|| tick_of(u.price));
                let order = Order::new(
                    order_id,
                    (u.price / tick).round() as i64,
                    tick,
                    u.qty,
                    side,
                    kind,
                    tif,
                );
                // Its fills so far were told to whoever ran it then: only new ones are fills here.
                Tracked {
                    bot: TO_ALL,
                    symbol: u.symbol.clone(),
                    order,
                    cum_exec_qty: u.cum_exec_qty,
                    cum_exec_value: u.cum_exec_value,
                    open: true,
                }
            });
        self.sent_links.insert(u.order_link_id.clone());
        // An update older than what we know (a push sent before the REST view of a reconcile, applied
        // after it) would take the order back in time.
        let exch_ts = u.updated_time.saturating_mul(1_000_000);
        let mut unsettled = 0.0;
        if exch_ts < t.order.exch_timestamp || u.cum_exec_qty + 1e-12 < t.cum_exec_qty {
            self.stats.stale_updates += 1;
            return;
        }
        let o = &mut t.order;
        let new_qty = u.cum_exec_qty - t.cum_exec_qty;
        if new_qty > 1e-12 {
            let value = u.cum_exec_value - t.cum_exec_value;
            let price = if value > 0.0 {
                value / new_qty
            } else {
                u.price
            };
            o.exec_qty = new_qty;
            o.exec_price_tick = (price / o.tick_size).round() as i64;
            let signed = if o.side == Side::Sell {
                -new_qty
            } else {
                new_qty
            };
            unsettled = signed;
            t.cum_exec_qty = u.cum_exec_qty;
            t.cum_exec_value = u.cum_exec_value;
        } else {
            o.exec_qty = 0.0;
        }
        o.status = status;
        o.qty = u.qty;
        o.leaves_qty = if matches!(status, Status::New | Status::PartiallyFilled) {
            u.leaves_qty
        } else {
            0.0
        };
        if u.price > 0.0 {
            o.price_tick = (u.price / o.tick_size).round() as i64;
        }
        o.exch_timestamp = exch_ts;
        o.local_timestamp = local_ts;
        o.req = Status::None;
        t.open = matches!(status, Status::New | Status::PartiallyFilled);
        if !t.open {
            self.cancelling.remove(&u.order_link_id);
        }
        if status == Status::Rejected {
            out.error(
                t.bot,
                ErrorKind::OrderError,
                &format!(
                    "order {} rejected by the exchange: {}",
                    o.order_id, u.reject_reason
                ),
            );
        }
        out.events.push((
            t.bot,
            LiveEvent::Order {
                symbol: t.symbol.clone(),
                order: o.clone(),
            },
        ));
        if unsettled != 0.0 {
            let symbol = t.symbol.clone();
            self.positions.entry(symbol).or_default().unsettled += unsettled;
        }
    }

    fn on_execution(&mut self, e: Execution) {
        if e.exec_type != "Trade" && !e.exec_type.is_empty()
            || self.order_id_of(&e.order_link_id).is_none()
        {
            return;
        }
        if !self.exec_ids.insert(e.exec_id.clone()) {
            self.stats.duplicate_fills += 1;
            return;
        }
        self.stats.fills += 1;
        self.positions.entry(e.symbol.clone()).or_default().fills += 1;
    }

    fn on_position(&mut self, p: PositionUpdate, out: &mut DeskOut) {
        let qty = p.signed_size();
        let pos = self.positions.entry(p.symbol.clone()).or_default();
        if p.updated_time < pos.updated_ms {
            self.stats.stale_updates += 1;
            return;
        }
        pos.updated_ms = p.updated_time;
        pos.qty = qty;
        pos.unsettled = 0.0;
        pos.avg_price = p.entry_price;
        pos.realised_pnl = p.cum_realised_pnl;
        let exch_ts = p.updated_time.saturating_mul(1_000_000);
        out.events.push((
            TO_ALL,
            LiveEvent::Position {
                symbol: p.symbol,
                qty,
                exch_ts,
            },
        ));
    }

    /// The control API's view (GET /trading).
    pub fn snapshot(&self, exchange_url: &str) -> Value {
        let mut symbols = serde_json::Map::new();
        let mut names: Vec<&String> = self.positions.keys().collect();
        for t in self.orders.values() {
            if !names.contains(&&t.symbol) {
                names.push(&t.symbol);
            }
        }
        names.sort();
        for symbol in names {
            let p = self.positions.get(symbol).cloned().unwrap_or_default();
            let mut open: Vec<(&String, &Tracked)> = self
                .orders
                .iter()
                .filter(|(_, t)| t.open && &t.symbol == symbol)
                .collect();
            open.sort_by_key(|(l, _)| l.as_str());
            let open: Vec<Value> = open
                .into_iter()
                .map(|(link, t)| {
                    json!({
                        "order_id": t.order.order_id, "link_id": link,
                        "side": if t.order.side == Side::Sell { "Sell" } else { "Buy" },
                        "price": t.order.price_tick as f64 * t.order.tick_size,
                        "qty": t.order.qty, "leaves_qty": t.order.leaves_qty,
                        "status": format!("{:?}", t.order.status),
                    })
                })
                .collect();
            symbols.insert(
                symbol.clone(),
                json!({
                    "position": p.qty, "avg_price": (p.qty != 0.0).then_some(p.avg_price),
                    "realised_pnl": p.realised_pnl, "fills": p.fills, "open_orders": open,
                }),
            );
        }
        json!({
            "enabled": self.off.is_none(), "reason": self.off, "exchange_url": exchange_url,
            "killed": self.killed, "reconciled": self.is_ready(), "wallet_usdt": self.wallet_usdt,
            "symbols": symbols,
            "limits": {
                "max_order_qty": self.limits.max_order_qty, "max_position": self.limits.max_position,
                "max_open_orders": self.limits.max_open_orders, "max_orders_per_s": self.limits.max_orders_per_s,
            },
            "stats": {
                "creates_sent": self.stats.creates_sent, "cancels_sent": self.stats.cancels_sent,
                "refused": self.stats.refused, "exchange_rejects": self.stats.exchange_rejects,
                "fills": self.stats.fills, "duplicate_fills": self.stats.duplicate_fills,
            },
        })
    }
}

fn status_of(bybit: &str) -> Status {
    match bybit {
        "New" | "Created" | "Untriggered" | "Triggered" => Status::New,
        "PartiallyFilled" => Status::PartiallyFilled,
        "Filled" => Status::Filled,
        "Cancelled" | "PartiallyFilledCanceled" | "Deactivated" => Status::Canceled,
        "Rejected" => Status::Rejected,
        _ => Status::Unsupported,
    }
}

/// The smallest power of ten that divides `price` (down to 1e-8): a tick for adopted orders.
fn tick_of(price: f64) -> f64 {
    let mut tick = 1.0;
    while tick > 1e-8 && ((price / tick).round() * tick - price).abs() > 1e-9 {
        tick /= 10.0;
    }
    tick
}

/// A decimal string without float noise or trailing zeros ("50000.1", "0.001").
pub fn decimal(value: f64) -> String {
    let text = format!("{value:.10}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use hftbacktest::types::LiveError;

    use super::*;

    const BOT: u64 = 7;
    const LIMITS: Limits = Limits {
        max_order_qty: 0.01,
        max_position: 0.02,
        max_open_orders: 3,
        max_orders_per_s: 5.0,
    };

    fn ready() -> Desk {
        let mut d = Desk::new("linear", "hl", LIMITS, None);
        d.reconcile(vec![], vec![], 1);
        d
    }

    fn limit(order_id: u64, side: Side, price: f64, qty: f64) -> Order {
        let mut o = Order::new(
            order_id,
            (price / 0.1).round() as i64,
            0.1,
            qty,
            side,
            OrdType::Limit,
            TimeInForce::GTC,
        );
        o.req = Status::New;
        o.status = Status::New;
        o
    }

    fn update(
        link: &str,
        status: &str,
        qty: f64,
        leaves: f64,
        cum: f64,
        value: f64,
    ) -> OrderUpdate {
        OrderUpdate {
            symbol: "BTCUSDT".into(),
            order_id: format!("x-{link}"),
            order_link_id: link.into(),
            side: "Buy".into(),
            price: 100.0,
            qty,
            order_status: status.into(),
            leaves_qty: leaves,
            cum_exec_qty: cum,
            cum_exec_value: value,
            order_type: "Limit".into(),
            time_in_force: "GTC".into(),
            reject_reason: String::new(),
            updated_time: 1_700_000_000_000,
        }
    }

    fn orders(out: &DeskOut) -> Vec<(u64, u64, Status, f64, f64)> {
        out.events
            .iter()
            .filter_map(|(bot, ev)| match ev {
                LiveEvent::Order { order: o, .. } => {
                    Some((*bot, o.order_id, o.status, o.leaves_qty, o.exec_qty))
                }
                _ => None,
            })
            .collect()
    }

    fn error_texts(out: &DeskOut) -> Vec<String> {
        out.events
            .iter()
            .filter_map(|(_, ev)| match ev {
                LiveEvent::Error(LiveError { value, .. }) => value.get_str().map(str::to_string),
                _ => None,
            })
            .collect()
    }

    fn send(d: &mut Desk, order: &Order, now: Instant) -> DeskOut {
        d.request(BOT, "BTCUSDT", order, now, 5)
    }

    #[test]
    fn without_keys_orders_are_refused_with_the_reason() {
        let mut d = Desk::new(
            "linear",
            "hl",
            LIMITS,
            Some("no API keys configured: market data only".into()),
        );
        let out = send(&mut d, &limit(1, Side::Buy, 100.0, 0.001), Instant::now());
        assert!(out.ops.is_empty());
        assert_eq!(orders(&out), [(BOT, 1, Status::Rejected, 0.0, 0.0)]);
        assert!(
            error_texts(&out)[0].contains("no API keys"),
            "{:?}",
            error_texts(&out)
        );
        assert_eq!(d.snapshot("")["enabled"], false);
        assert!(
            d.kill().cancel_all.is_empty(),
            "without keys the kill switch asks the exchange nothing"
        );
    }

    #[test]
    fn an_order_goes_out_once_and_is_acknowledged_only_by_the_order_stream() {
        let mut d = ready();
        let mut o = limit(42, Side::Buy, 50000.1, 0.003);
        o.time_in_force = TimeInForce::GTX;
        let out = send(&mut d, &o, Instant::now());
        assert!(
            out.events.is_empty(),
            "no ack before the order stream says so"
        );
        assert_eq!(out.ops.len(), 1);
        let op = &out.ops[0];
        assert_eq!(op.op, "order.create");
        let want = json!({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
            "price": "50000.1", "qty": "0.003", "timeInForce": "PostOnly", "orderLinkId": "hl42"});
        assert_eq!(op.args, want);
        // The trade stream's ack alone changes nothing for the bot.
        let ack = PrivateFrame::TradeReply {
            req_id: Some(op.req_id.clone()),
            op: "order.create".into(),
            code: 0,
            msg: "OK".into(),
        };
        assert!(d.on_frame(ack, 6).events.is_empty());
        // The order stream: new, a partial fill, then the rest.
        let out = d.on_frame(
            PrivateFrame::Orders(vec![update("hl42", "New", 0.003, 0.003, 0.0, 0.0)]),
            7,
        );
        assert_eq!(orders(&out), [(BOT, 42, Status::New, 0.003, 0.0)]);
        let out = d.on_frame(
            PrivateFrame::Orders(vec![update(
                "hl42",
                "PartiallyFilled",
                0.003,
                0.002,
                0.001,
                100.0 * 0.001,
            )]),
            8,
        );
        assert_eq!(
            orders(&out),
            [(BOT, 42, Status::PartiallyFilled, 0.002, 0.001)]
        );
        let out = d.on_frame(
            PrivateFrame::Orders(vec![update(
                "hl42",
                "Filled",
                0.003,
                0.0,
                0.003,
                0.1 + 0.2004,
            )]),
            9,
        );
        let LiveEvent::Order { order: filled, .. } = &out.events[0].1 else {
            panic!("not an order")
        };
        assert_eq!((filled.status, filled.exec_qty), (Status::Filled, 0.002));
        assert_eq!(
            filled.exec_price_tick, 1002,
            "the second fill's own price, 100.2"
        );
        assert_eq!(filled.exch_timestamp, 1_700_000_000_000_000_000);
        // The same order id again is refused: never sent twice.
        let out = send(&mut d, &o, Instant::now() + Duration::from_secs(2));
        assert!(out.ops.is_empty());
        assert!(error_texts(&out)[0].contains("already used"));
    }

    #[test]
    fn limits_refuse_what_would_break_them_and_nothing_is_sent() {
        let mut d = ready();
        let t0 = Instant::now();
        let cases = [
            (limit(1, Side::Buy, 100.0, 0.02), "max_order_qty"),
            (limit(2, Side::Buy, 100.0, 0.0), "max_order_qty"),
            (limit(3, Side::Buy, 0.0, 0.001), "positive price"),
        ];
        for (order, needle) in cases {
            let out = send(&mut d, &order, t0);
            assert!(out.ops.is_empty(), "{needle}");
            assert!(
                error_texts(&out)[0].contains(needle),
                "{:?}",
                error_texts(&out)
            );
        }
        // Position: two buys of 0.01 reach the max; a third would exceed it, a sell is fine.
        assert_eq!(
            send(&mut d, &limit(10, Side::Buy, 100.0, 0.01), t0)
                .ops
                .len(),
            1
        );
        assert_eq!(
            send(&mut d, &limit(11, Side::Buy, 99.0, 0.01), t0)
                .ops
                .len(),
            1
        );
        let out = send(&mut d, &limit(12, Side::Buy, 98.0, 0.001), t0);
        assert!(error_texts(&out)[0].contains("max_position"));
        assert_eq!(
            send(&mut d, &limit(13, Side::Sell, 101.0, 0.001), t0)
                .ops
                .len(),
            1
        );
        // Open orders: three are open (10, 11, 13).
        let out = send(&mut d, &limit(14, Side::Sell, 102.0, 0.001), t0);
        assert!(error_texts(&out)[0].contains("max_open_orders"));
        assert_eq!(d.stats.creates_sent, 3);
    }

    #[test]
    fn order_rate_is_capped_per_second() {
        let mut d = Desk::new(
            "linear",
            "hl",
            Limits {
                max_open_orders: 100,
                max_position: 1.0,
                ..LIMITS
            },
            None,
        );
        d.reconcile(vec![], vec![], 1);
        let t0 = Instant::now();
        let sent: Vec<usize> = (0..7)
            .map(|i| {
                send(&mut d, &limit(i, Side::Buy, 100.0, 0.001), t0)
                    .ops
                    .len()
            })
            .collect();
        assert_eq!(sent, [1, 1, 1, 1, 1, 0, 0]);
        let later = t0 + Duration::from_millis(1001);
        assert_eq!(
            send(&mut d, &limit(9, Side::Buy, 100.0, 0.001), later)
                .ops
                .len(),
            1
        );
    }

    #[test]
    fn exchange_refusal_reaches_the_bot_as_a_rejection() {
        let mut d = ready();
        let out = send(&mut d, &limit(5, Side::Sell, 100.0, 0.001), Instant::now());
        let reply = PrivateFrame::TradeReply {
            req_id: Some(out.ops[0].req_id.clone()),
            op: "order.create".into(),
            code: 110007,
            msg: "ab not enough".into(),
        };
        let out = d.on_frame(reply, 9);
        assert_eq!(orders(&out), [(BOT, 5, Status::Rejected, 0.0, 0.0)]);
        assert!(error_texts(&out)[0].contains("110007"));
        assert_eq!(
            d.snapshot("")["symbols"]["BTCUSDT"]["open_orders"],
            json!([])
        );
    }

    #[test]
    fn kill_cancels_every_open_order_and_refuses_new_ones() {
        let mut d = ready();
        let t0 = Instant::now();
        send(&mut d, &limit(1, Side::Buy, 100.0, 0.001), t0);
        send(&mut d, &limit(2, Side::Sell, 101.0, 0.001), t0);
        let cancels = |out: &DeskOut| -> Vec<(&str, Value)> {
            out.ops
                .iter()
                .map(|o| (o.op, o.args["orderLinkId"].clone()))
                .collect()
        };
        let out = d.kill();
        assert_eq!(
            out.cancel_all,
            ["BTCUSDT"],
            "one REST cancel-all per symbol"
        );
        assert!(out.ops.is_empty(), "the trade stream waits for its answer");
        let out = send(&mut d, &limit(3, Side::Buy, 100.0, 0.001), t0);
        assert!(out.ops.is_empty() && error_texts(&out)[0].contains("kill switch"));
        assert_eq!(d.snapshot("")["killed"], true);
        // An order the cancel-all did not list (its create still on the way) is cancelled by itself.
        let out = d.on_cancel_all("BTCUSDT", Ok(vec!["hl1".into()]));
        assert_eq!(cancels(&out), [("order.cancel", json!("hl2"))]);
        let out = d.on_cancel_all("ETHUSDT", Err("timeout".into()));
        assert!(
            out.ops.is_empty(),
            "another symbol's answer cancels nothing here"
        );
    }

    #[test]
    fn a_failed_cancel_all_falls_back_to_cancelling_order_by_order() {
        let mut d = ready();
        let t0 = Instant::now();
        send(&mut d, &limit(1, Side::Buy, 100.0, 0.001), t0);
        send(&mut d, &limit(2, Side::Sell, 101.0, 0.001), t0);
        d.kill();
        let out = d.on_cancel_all(
            "BTCUSDT",
            Err("exchange error 10006: Too many visits!".into()),
        );
        let links: Vec<Value> = out
            .ops
            .iter()
            .map(|o| o.args["orderLinkId"].clone())
            .collect();
        assert_eq!(links, [json!("hl1"), json!("hl2")]);
        assert!(out.ops.iter().all(|o| o.op == "order.cancel"));
        assert!(
            d.on_cancel_all("BTCUSDT", Err("again".into()))
                .ops
                .is_empty(),
            "cancels already on their way are not sent twice"
        );
    }

    #[test]
    fn a_kill_while_away_leaves_the_cancels_to_the_next_reconcile() {
        let mut d = ready();
        send(&mut d, &limit(1, Side::Buy, 100.0, 0.001), Instant::now());
        d.on_link_down("dropped");
        assert_eq!(d.kill().cancel_all, ["BTCUSDT"]);
        assert!(
            d.on_cancel_all("BTCUSDT", Err("down".into()))
                .ops
                .is_empty()
        );
        let out = d.reconcile(
            vec![update("hl1", "New", 0.001, 0.001, 0.0, 0.0)],
            vec![],
            5,
        );
        let links: Vec<Value> = out
            .ops
            .iter()
            .map(|o| o.args["orderLinkId"].clone())
            .collect();
        assert_eq!(links, [json!("hl1")]);
    }

    #[test]
    fn reconcile_adopts_our_open_orders_and_looks_up_the_vanished() {
        let mut d = ready();
        send(&mut d, &limit(1, Side::Buy, 100.0, 0.001), Instant::now());
        send(&mut d, &limit(2, Side::Buy, 100.0, 0.001), Instant::now());
        d.on_link_down("test");
        assert!(
            send(&mut d, &limit(3, Side::Buy, 100.0, 0.001), Instant::now())
                .ops
                .is_empty()
        );
        // After the reconnect: hl2 and an order of an earlier run are open; hl1 is gone.
        let listed = vec![
            update("hl2", "New", 0.001, 0.001, 0.0, 0.0),
            update("hl900", "New", 0.002, 0.002, 0.0, 0.0),
            update("other", "New", 1.0, 1.0, 0.0, 0.0),
        ];
        let position = PositionUpdate {
            symbol: "BTCUSDT".into(),
            side: "Buy".into(),
            size: 0.001,
            entry_price: 100.0,
            cum_realised_pnl: 0.0,
            updated_time: 1,
        };
        let out = d.reconcile(listed, vec![position], 10);
        assert_eq!(out.lookups, [("BTCUSDT".to_string(), "hl1".to_string())]);
        let o = orders(&out);
        assert!(
            o.contains(&(BOT, 2, Status::New, 0.001, 0.0))
                && o.contains(&(TO_ALL, 900, Status::New, 0.002, 0.0)),
            "{o:?}"
        );
        assert!(
            out.events
                .iter()
                .any(|(_, e)| matches!(e, LiveEvent::Position { qty, .. } if *qty == 0.001))
        );
        assert!(!d.is_ready(), "not before the lookup answers");
        let out = d.on_lookup(
            "hl1",
            Ok(Some(update("hl1", "Filled", 0.001, 0.0, 0.001, 0.1))),
            11,
        );
        assert_eq!(orders(&out), [(BOT, 1, Status::Filled, 0.0, 0.001)]);
        assert!(d.is_ready());
        assert_eq!(d.stats.foreign_orders, 1);
    }

    #[test]
    fn an_older_push_never_takes_an_order_or_a_position_back() {
        let mut d = ready();
        send(&mut d, &limit(1, Side::Buy, 100.0, 0.003), Instant::now());
        let mut newer = update("hl1", "PartiallyFilled", 0.003, 0.002, 0.001, 0.1);
        newer.updated_time = 2_000;
        d.on_frame(PrivateFrame::Orders(vec![newer]), 1);
        let mut older = update("hl1", "New", 0.003, 0.003, 0.0, 0.0);
        older.updated_time = 1_000;
        assert!(
            d.on_frame(PrivateFrame::Orders(vec![older]), 2)
                .events
                .is_empty()
        );
        let position = |size: f64, updated_time: i64| PositionUpdate {
            symbol: "BTCUSDT".into(),
            side: "Buy".into(),
            size,
            entry_price: 100.0,
            cum_realised_pnl: 0.0,
            updated_time,
        };
        d.on_frame(PrivateFrame::Positions(vec![position(0.001, 2_000)]), 3);
        assert!(
            d.on_frame(PrivateFrame::Positions(vec![position(0.0, 1_000)]), 4)
                .events
                .is_empty()
        );
        assert_eq!(d.stats.stale_updates, 2);
        assert_eq!(d.snapshot("")["symbols"]["BTCUSDT"]["position"], 0.001);
    }

    #[test]
    fn an_adopted_order_brings_no_old_fill_with_it() {
        let mut d = ready();
        let earlier_run = update("hl77", "PartiallyFilled", 0.003, 0.002, 0.001, 0.1);
        let out = d.reconcile(vec![earlier_run], vec![], 1);
        assert_eq!(
            orders(&out),
            [(TO_ALL, 77, Status::PartiallyFilled, 0.002, 0.0)]
        );
        let out = d.on_frame(
            PrivateFrame::Orders(vec![update("hl77", "Filled", 0.003, 0.0, 0.003, 0.3)]),
            2,
        );
        assert_eq!(orders(&out), [(TO_ALL, 77, Status::Filled, 0.0, 0.002)]);
    }

    #[test]
    fn a_fill_counts_toward_max_position_before_the_position_push() {
        let mut d = ready();
        let t0 = Instant::now();
        assert_eq!(
            send(&mut d, &limit(1, Side::Buy, 100.0, 0.01), t0)
                .ops
                .len(),
            1
        );
        // The order stream says filled; the position push has not come yet.
        d.on_frame(
            PrivateFrame::Orders(vec![update("hl1", "Filled", 0.01, 0.0, 0.01, 1.0)]),
            1,
        );
        assert_eq!(
            send(&mut d, &limit(2, Side::Buy, 100.0, 0.01), t0)
                .ops
                .len(),
            1
        );
        d.on_frame(
            PrivateFrame::Orders(vec![update("hl2", "Filled", 0.01, 0.0, 0.01, 1.0)]),
            2,
        );
        let out = send(&mut d, &limit(3, Side::Buy, 100.0, 0.001), t0);
        assert!(
            error_texts(&out)[0].contains("max_position"),
            "{:?}",
            error_texts(&out)
        );
        let pushed = PositionUpdate {
            symbol: "BTCUSDT".into(),
            side: "Buy".into(),
            size: 0.02,
            entry_price: 100.0,
            cum_realised_pnl: 0.0,
            updated_time: 1_700_000_000_001,
        };
        d.on_frame(PrivateFrame::Positions(vec![pushed]), 3);
        assert!(
            send(&mut d, &limit(4, Side::Buy, 100.0, 0.001), t0)
                .ops
                .is_empty(),
            "0.02 held, none on top"
        );
        assert_eq!(
            send(&mut d, &limit(5, Side::Sell, 101.0, 0.01), t0)
                .ops
                .len(),
            1,
            "selling is fine"
        );
    }

    #[test]
    fn a_position_gone_flat_while_away_is_zero_after_reconcile() {
        let mut d = ready();
        let held = PositionUpdate {
            symbol: "BTCUSDT".into(),
            side: "Sell".into(),
            size: 0.004,
            entry_price: 100.0,
            cum_realised_pnl: 0.0,
            updated_time: 5,
        };
        d.on_frame(PrivateFrame::Positions(vec![held]), 1);
        d.on_link_down("test");
        // Listed by settleCoin, a flat position is simply not there.
        let out = d.reconcile(vec![], vec![], 2);
        assert!(
            out.events
                .iter()
                .any(|(_, e)| matches!(e, LiveEvent::Position { qty, .. } if *qty == 0.0))
        );
        assert_eq!(d.snapshot("")["symbols"]["BTCUSDT"]["position"], 0.0);
    }

    #[test]
    fn a_bot_that_registers_takes_over_the_symbols_open_orders() {
        let mut d = ready();
        send(&mut d, &limit(1, Side::Buy, 100.0, 0.001), Instant::now());
        const NEW_BOT: u64 = 99;
        let out = d.register(NEW_BOT, "BTCUSDT", 0.1);
        assert_eq!(orders(&out), [(NEW_BOT, 1, Status::New, 0.001, 0.0)]);
        let out = d.on_frame(
            PrivateFrame::Orders(vec![update("hl1", "Cancelled", 0.001, 0.0, 0.0, 0.0)]),
            2,
        );
        assert_eq!(orders(&out), [(NEW_BOT, 1, Status::Canceled, 0.0, 0.0)]);
        // Cancelling it again: refused, with the order as it stands (cancelled), not as the bot remembers it.
        let mut stale = limit(1, Side::Buy, 100.0, 0.001);
        stale.req = Status::Canceled;
        let out = d.request(NEW_BOT, "BTCUSDT", &stale, Instant::now(), 3);
        assert!(out.ops.is_empty());
        assert_eq!(orders(&out), [(NEW_BOT, 1, Status::Canceled, 0.0, 0.0)]);
    }

    #[test]
    fn one_cancel_in_flight_per_order() {
        let mut d = ready();
        send(&mut d, &limit(1, Side::Buy, 100.0, 0.001), Instant::now());
        d.on_frame(
            PrivateFrame::Orders(vec![update("hl1", "New", 0.001, 0.001, 0.0, 0.0)]),
            1,
        );
        let mut cancel = limit(1, Side::Buy, 100.0, 0.001);
        cancel.req = Status::Canceled;
        assert_eq!(
            d.request(BOT, "BTCUSDT", &cancel, Instant::now(), 2)
                .ops
                .len(),
            1
        );
        assert!(
            d.request(BOT, "BTCUSDT", &cancel, Instant::now(), 3)
                .ops
                .is_empty()
        );
        d.kill();
        assert!(
            d.on_cancel_all("BTCUSDT", Err("down".into()))
                .ops
                .is_empty(),
            "the kill switch does not cancel it twice"
        );
    }

    #[test]
    fn a_fill_is_counted_once_however_often_it_arrives() {
        let mut d = ready();
        let exec = Execution {
            symbol: "BTCUSDT".into(),
            order_link_id: "hl1".into(),
            exec_id: "e1".into(),
            exec_type: "Trade".into(),
            exec_qty: 0.001,
            exec_price: 100.0,
            is_maker: true,
        };
        d.on_frame(PrivateFrame::Executions(vec![exec.clone(), exec]), 1);
        assert_eq!((d.stats.fills, d.stats.duplicate_fills), (1, 1));
    }

    #[test]
    fn decimals_have_no_float_noise() {
        assert_eq!(decimal(500001.0 * 0.1), "50000.1");
        assert_eq!(decimal(0.001), "0.001");
        assert_eq!(decimal(3.0), "3");
    }
}

//! Turns book changes, trades and failures into the hftbacktest 0.9.4 events a live bot
//! applies: LOCAL bid/ask DEPTH events, LOCAL buy/sell TRADE events, and `LiveEvent::Error`.

use std::time::{SystemTime, UNIX_EPOCH};

use hftbacktest::types::{
    ErrorKind, Event, LOCAL_ASK_DEPTH_EVENT, LOCAL_BID_DEPTH_EVENT, LOCAL_BUY_TRADE_EVENT,
    LOCAL_SELL_TRADE_EVENT, LiveError, LiveEvent, Value,
};

use crate::bybit::{
    book::{LevelChange, Side},
    msg::{TakerSide, Trade},
};

/// `ErrorKind::Custom` codes this connector sends; bots can match on them.
pub mod code {
    /// The bot's tick size differs from the exchange's `priceFilter.tickSize`.
    pub const TICK_SIZE_MISMATCH: i64 = 1001;
    /// The bot's lot size differs from the exchange's `lotSizeFilter.qtyStep`.
    pub const LOT_SIZE_MISMATCH: i64 = 1002;
    /// The exchange does not know the symbol (REST or subscription refused).
    pub const UNKNOWN_SYMBOL: i64 = 1003;
    /// The symbol cannot be a Bybit topic (empty, too long, odd characters).
    pub const INVALID_SYMBOL: i64 = 1004;
    /// The private or trade stream is down, or the exchange refused the keys: no new orders.
    pub const TRADING_DOWN: i64 = 1005;
    /// The kill switch was engaged: open orders cancelled, new ones refused.
    pub const KILL_SWITCH: i64 = 1006;
}

/// Longest error text we put in one 512-byte IPC slot (bincode adds a few bytes around it).
const MAX_ERROR_TEXT: usize = 200;

const NS_PER_MS: i64 = 1_000_000;

/// Wall-clock now in nanoseconds since the epoch (the bot compares it with its own clock).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Exchange milliseconds to nanoseconds; a missing exchange time becomes the receive time.
pub fn exch_ns(ms: Option<i64>, local_ts: i64) -> i64 {
    ms.map(|ms| ms.saturating_mul(NS_PER_MS))
        .unwrap_or(local_ts)
}

pub fn depth_event(symbol: &str, change: &LevelChange, exch_ts: i64, local_ts: i64) -> LiveEvent {
    let ev = match change.side {
        Side::Bid => LOCAL_BID_DEPTH_EVENT,
        Side::Ask => LOCAL_ASK_DEPTH_EVENT,
    };
    feed(symbol, ev, exch_ts, local_ts, change.px, change.qty, 0)
}

/// `number` is the symbol's trade count since the connector started (1, 2, …), carried in `ival`: the bot
/// keeps trade events whole, so a reader that sees a number skipped knows trades were lost on the way
/// (iceoryx2 overwrites the oldest sample when a bot's buffer is full).
pub fn trade_event(symbol: &str, trade: &Trade, local_ts: i64, number: i64) -> LiveEvent {
    let ev = match trade.side {
        TakerSide::Buy => LOCAL_BUY_TRADE_EVENT,
        TakerSide::Sell => LOCAL_SELL_TRADE_EVENT,
    };
    let exch_ts = exch_ns(Some(trade.time_ms), local_ts);
    feed(symbol, ev, exch_ts, local_ts, trade.px, trade.qty, number)
}

fn feed(
    symbol: &str,
    ev: u64,
    exch_ts: i64,
    local_ts: i64,
    px: f64,
    qty: f64,
    ival: i64,
) -> LiveEvent {
    LiveEvent::Feed {
        symbol: symbol.to_string(),
        event: Event {
            ev,
            exch_ts,
            local_ts,
            px,
            qty,
            order_id: 0,
            ival,
            fval: 0.0,
        },
    }
}

/// An error event whose text fits the IPC slot.
pub fn error_event(kind: ErrorKind, text: &str) -> LiveEvent {
    let text: String = text.chars().take(MAX_ERROR_TEXT).collect();
    LiveEvent::Error(LiveError::with(kind, Value::String(text)))
}

#[cfg(test)]
mod tests {
    use hftbacktest::types::{BUY_EVENT, DEPTH_EVENT, LOCAL_EVENT, SELL_EVENT, TRADE_EVENT};

    use super::*;

    fn event_of(ev: LiveEvent) -> (String, Event) {
        match ev {
            LiveEvent::Feed { symbol, event } => (symbol, event),
            other => panic!("not a feed: {other:?}"),
        }
    }

    #[test]
    fn depth_flags_match_what_the_bot_applies() {
        let bid = LevelChange {
            side: Side::Bid,
            px: 16493.5,
            qty: 0.006,
        };
        let (symbol, e) = event_of(depth_event(
            "BTCUSDT",
            &bid,
            exch_ns(Some(1_672_304_484_976), 7),
            7,
        ));
        assert_eq!(symbol, "BTCUSDT");
        assert_eq!(e.ev, DEPTH_EVENT | BUY_EVENT | LOCAL_EVENT);
        assert!(e.is(LOCAL_BID_DEPTH_EVENT));
        assert!(!e.is(LOCAL_ASK_DEPTH_EVENT));
        assert_eq!(e.exch_ts, 1_672_304_484_976_000_000);
        assert_eq!(e.local_ts, 7);
        assert_eq!((e.px, e.qty), (16493.5, 0.006));

        let gone = LevelChange {
            side: Side::Ask,
            px: 16611.0,
            qty: 0.0,
        };
        let (_, e) = event_of(depth_event("BTCUSDT", &gone, 1, 2));
        assert_eq!(e.ev, DEPTH_EVENT | SELL_EVENT | LOCAL_EVENT);
        assert!(e.is(LOCAL_ASK_DEPTH_EVENT));
        assert_eq!(e.qty, 0.0);
    }

    #[test]
    fn trade_flags_follow_the_taker_side() {
        let buy = Trade {
            time_ms: 1_672_304_486_865,
            side: TakerSide::Buy,
            px: 16578.5,
            qty: 0.001,
        };
        let (_, e) = event_of(trade_event("BTCUSDT", &buy, 99, 7));
        assert_eq!(e.ev, TRADE_EVENT | BUY_EVENT | LOCAL_EVENT);
        assert_eq!(e.ival, 7, "the trade's number");
        assert!(e.is(LOCAL_BUY_TRADE_EVENT));
        assert_eq!(e.exch_ts, 1_672_304_486_865_000_000);
        assert_eq!(e.local_ts, 99);
        let sell = Trade {
            side: TakerSide::Sell,
            ..buy
        };
        let (_, e) = event_of(trade_event("BTCUSDT", &sell, 99, 8));
        assert!(e.is(LOCAL_SELL_TRADE_EVENT));
        assert!(!e.is(LOCAL_BUY_TRADE_EVENT));
    }

    #[test]
    fn missing_exchange_time_uses_receive_time() {
        assert_eq!(exch_ns(None, 42), 42);
        assert_eq!(exch_ns(Some(3), 42), 3_000_000);
    }

    #[test]
    fn now_is_nanoseconds_since_epoch() {
        // 2020-01-01 .. 2100-01-01 in ns
        let now = now_ns();
        assert!(
            now > 1_577_836_800_000_000_000 && now < 4_102_444_800_000_000_000,
            "{now}"
        );
    }

    #[test]
    fn error_text_is_cut_to_fit_the_slot() {
        let LiveEvent::Error(e) =
            error_event(ErrorKind::Custom(code::UNKNOWN_SYMBOL), &"x".repeat(5000))
        else {
            panic!("not an error");
        };
        assert_eq!(e.kind, ErrorKind::Custom(1003));
        assert_eq!(e.value.get_str().map(str::len), Some(MAX_ERROR_TEXT));
        // Encoded, the event must fit the crate's 512-byte payload.
        let mut buf = [0u8; 512];
        let n =
            bincode::encode_into_slice(LiveEvent::Error(e), &mut buf, bincode::config::standard());
        assert!(n.is_ok());
    }
}

//! Bybit v5 public WebSocket frames: serde structs for the wire, and `parse_frame` that turns
//! one text frame into a typed [`Frame`] (never panics on bad input).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

/// Why a frame could not be used.
#[derive(Debug, Error)]
pub enum MsgError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid decimal {field} {value:?}")]
    Decimal { field: &'static str, value: String },
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("frame has neither topic nor op")]
    NoTopicNorOp,
    #[error("frame has a topic but no data")]
    NoData,
}

impl MsgError {
    /// Unknown-but-well-formed frames are counted apart from broken ones.
    pub fn is_unknown(&self) -> bool {
        match self {
            MsgError::UnknownType(_) | MsgError::UnknownTopic(_) | MsgError::NoTopicNorOp => true,
            MsgError::Json(_) | MsgError::Decimal { .. } | MsgError::NoData => false,
        }
    }
}

/// Request we send: `{"req_id":"7","op":"subscribe","args":["orderbook.50.BTCUSDT"]}`.
#[derive(Debug, Serialize)]
pub struct OpRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
    pub op: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub args: &'a [String],
}

/// The envelope every public frame shares; `data` is parsed once the topic is known.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Envelope<'a> {
    #[serde(borrow)]
    topic: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    ts: Option<i64>,
    cts: Option<i64>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    op: Option<String>,
    success: Option<bool>,
    ret_msg: Option<String>,
    req_id: Option<String>,
}

// A missing `Option` field is `None`; `&str` fields borrow from the frame without saying so.
#[derive(Debug, Deserialize)]
struct WireOrderbook<'a> {
    #[serde(borrow)]
    s: Option<&'a str>,
    #[serde(default, borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(default, borrow)]
    a: Vec<[&'a str; 2]>,
    u: u64,
    seq: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct WireTrade<'a> {
    #[serde(rename = "T")]
    time_ms: i64,
    #[serde(borrow)]
    s: Option<&'a str>,
    #[serde(rename = "S")]
    side: &'a str,
    v: &'a str,
    p: &'a str,
}

/// Snapshot or delta, as Bybit labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookKind {
    Snapshot,
    Delta,
}

/// One price level: price and size as numbers; size 0 deletes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    pub px: f64,
    pub qty: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrderbookMsg {
    pub symbol: String,
    pub depth: u32,
    pub kind: BookKind,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub u: u64,
    pub seq: Option<i64>,
    /// Matching-engine time (`cts`), else the frame's `ts`; milliseconds.
    pub exch_ts_ms: Option<i64>,
    /// True when `cts` was absent and `ts` was used instead.
    pub cts_missing: bool,
}

/// Which side took liquidity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakerSide {
    Buy,
    Sell,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trade {
    pub time_ms: i64,
    pub side: TakerSide,
    pub px: f64,
    pub qty: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TradesMsg {
    pub symbol: String,
    pub trades: Vec<Trade>,
}

/// Answer to one of our `op` requests (subscribe, unsubscribe, ping).
#[derive(Clone, Debug, PartialEq)]
pub struct OpResponse {
    pub op: String,
    pub success: bool,
    pub ret_msg: String,
    pub req_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Orderbook(OrderbookMsg),
    Trades(TradesMsg),
    Pong,
    Op(OpResponse),
}

/// Parses one text frame from the public stream.
pub fn parse_frame(text: &str) -> Result<Frame, MsgError> {
    let env: Envelope<'_> = serde_json::from_str(text)?;
    if let Some(topic) = env.topic {
        let data = env.data.ok_or(MsgError::NoData)?;
        if let Some(rest) = topic.strip_prefix("orderbook.") {
            let (depth, topic_symbol) = rest
                .split_once('.')
                .and_then(|(d, s)| d.parse::<u32>().ok().map(|d| (d, s)))
                .ok_or_else(|| MsgError::UnknownTopic(topic.to_string()))?;
            let kind = match env.kind {
                Some("snapshot") => BookKind::Snapshot,
                Some("delta") => BookKind::Delta,
                other => return Err(MsgError::UnknownType(other.unwrap_or("").to_string())),
            };
            let wire: WireOrderbook<'_> = serde_json::from_str(data.get())?;
            return Ok(Frame::Orderbook(OrderbookMsg {
                symbol: wire.s.unwrap_or(topic_symbol).to_string(),
                depth,
                kind,
                bids: levels(&wire.b)?,
                asks: levels(&wire.a)?,
                u: wire.u,
                seq: wire.seq,
                exch_ts_ms: env.cts.or(env.ts),
                cts_missing: env.cts.is_none(),
            }));
        }
        if let Some(topic_symbol) = topic.strip_prefix("publicTrade.") {
            let wire: Vec<WireTrade<'_>> = serde_json::from_str(data.get())?;
            let mut trades = Vec::with_capacity(wire.len());
            let mut symbol = topic_symbol;
            for t in &wire {
                if let Some(s) = t.s {
                    symbol = s;
                }
                let side = match t.side {
                    "Buy" => TakerSide::Buy,
                    "Sell" => TakerSide::Sell,
                    other => return Err(MsgError::UnknownType(format!("trade side {other}"))),
                };
                trades.push(Trade {
                    time_ms: t.time_ms,
                    side,
                    px: decimal("p", t.p)?,
                    qty: decimal("v", t.v)?,
                });
            }
            return Ok(Frame::Trades(TradesMsg {
                symbol: symbol.to_string(),
                trades,
            }));
        }
        return Err(MsgError::UnknownTopic(topic.to_string()));
    }
    match env.op.as_deref() {
        // Linear streams answer `{"op":"ping","ret_msg":"pong",...}`; others send `{"op":"pong"}`.
        Some("pong") => Ok(Frame::Pong),
        Some("ping") if env.ret_msg.as_deref() == Some("pong") => Ok(Frame::Pong),
        Some(op) => Ok(Frame::Op(OpResponse {
            op: op.to_string(),
            success: env.success.unwrap_or(false),
            ret_msg: env.ret_msg.unwrap_or_default(),
            req_id: env.req_id,
        })),
        None => Err(MsgError::NoTopicNorOp),
    }
}

fn levels(raw: &[[&str; 2]]) -> Result<Vec<Level>, MsgError> {
    raw.iter()
        .map(|[px, qty]| {
            Ok(Level {
                px: decimal("price", px)?,
                qty: decimal("size", qty)?,
            })
        })
        .collect()
}

/// Bybit sends decimals as strings; reject anything that is not a finite, non-negative number.
fn decimal(field: &'static str, value: &str) -> Result<f64, MsgError> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(MsgError::Decimal {
            field,
            value: value.chars().take(32).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1672304484978,
        "data":{"s":"BTCUSDT","b":[["16493.50","0.006"],["16493.00","0.100"]],
        "a":[["16611.00","0.029"],["16612.00","0.213"]],"u":18521288,"seq":7961638724},
        "cts":1672304484976}"#;

    fn book(text: &str) -> OrderbookMsg {
        match parse_frame(text) {
            Ok(Frame::Orderbook(m)) => m,
            other => panic!("not an orderbook frame: {other:?}"),
        }
    }

    #[test]
    fn parses_snapshot() {
        let m = book(SNAPSHOT);
        assert_eq!(m.symbol, "BTCUSDT");
        assert_eq!(m.depth, 50);
        assert_eq!(m.kind, BookKind::Snapshot);
        assert_eq!(m.u, 18521288);
        assert_eq!(m.seq, Some(7961638724));
        assert_eq!(m.exch_ts_ms, Some(1672304484976));
        assert!(!m.cts_missing);
        assert_eq!((m.bids[0].px, m.bids[0].qty), (16493.5, 0.006));
        assert_eq!((m.asks[1].px, m.asks[1].qty), (16612.0, 0.213));
    }

    #[test]
    fn parses_delta_with_deletion() {
        let text = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,
            "data":{"s":"BTCUSDT","b":[["30247.20","30.028"],["30245.40","0"]],"a":[],"u":177400507,
            "seq":66544703342},"cts":1687940967464}"#;
        let m = book(text);
        assert_eq!(m.kind, BookKind::Delta);
        assert_eq!(m.bids.len(), 2);
        assert_eq!(m.bids[1].qty, 0.0);
        assert!(m.asks.is_empty());
    }

    #[test]
    fn missing_cts_falls_back_to_ts() {
        let text = r#"{"topic":"orderbook.1.ETHUSDT","type":"snapshot","ts":1000,
            "data":{"s":"ETHUSDT","b":[["1.5","2"]],"a":[],"u":5}}"#;
        let m = book(text);
        assert_eq!(m.exch_ts_ms, Some(1000));
        assert!(m.cts_missing);
        assert_eq!(m.depth, 1);
    }

    #[test]
    fn missing_cts_and_ts_is_still_a_frame() {
        let text = r#"{"topic":"orderbook.50.X","type":"delta","data":{"b":[],"a":[],"u":9}}"#;
        let m = book(text);
        assert_eq!(m.exch_ts_ms, None);
        assert_eq!(m.symbol, "X");
    }

    #[test]
    fn parses_trades() {
        let text = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,
            "data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50",
            "L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1},
            {"T":1672304486866,"s":"BTCUSDT","S":"Sell","v":"2","p":"16578.00","L":"ZeroMinusTick",
            "i":"x","BT":false}]}"#;
        let Ok(Frame::Trades(m)) = parse_frame(text) else {
            panic!("not a trade frame");
        };
        assert_eq!(m.symbol, "BTCUSDT");
        let trade = |time_ms, side, px, qty| Trade {
            time_ms,
            side,
            px,
            qty,
        };
        assert_eq!(
            m.trades,
            vec![
                trade(1672304486865, TakerSide::Buy, 16578.5, 0.001),
                trade(1672304486866, TakerSide::Sell, 16578.0, 2.0),
            ]
        );
    }

    #[test]
    fn parses_subscribe_ack_and_failure() {
        let ok = r#"{"success":true,"ret_msg":"","conn_id":"abc","req_id":"3","op":"subscribe"}"#;
        assert_eq!(
            parse_frame(ok).ok(),
            Some(Frame::Op(OpResponse {
                op: "subscribe".into(),
                success: true,
                ret_msg: String::new(),
                req_id: Some("3".into()),
            }))
        );
        let bad = r#"{"success":false,"ret_msg":"error:handler not found,topic:orderbook.50.NOPE","conn_id":"c","op":"subscribe"}"#;
        let Ok(Frame::Op(op)) = parse_frame(bad) else {
            panic!("not an op frame");
        };
        assert!(!op.success);
        assert!(op.ret_msg.contains("handler not found"));
    }

    #[test]
    fn parses_both_pong_forms() {
        let linear = r#"{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"","op":"ping"}"#;
        let other = r#"{"req_id":"","op":"pong","args":["1675418560633"],"conn_id":"x"}"#;
        assert_eq!(parse_frame(linear).ok(), Some(Frame::Pong));
        assert_eq!(parse_frame(other).ok(), Some(Frame::Pong));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let cases = [
            "",
            "not json",
            "[1,2,3]",
            r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot"}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","data":{"b":[["x","1"]],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","data":{"b":[["1"]],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","data":{"b":[],"a":[]}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"b":[["-1","1"]],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"b":[["NaN","1"]],"a":[],"u":1}}"#,
            r#"{"topic":"publicTrade.BTCUSDT","data":[{"T":1,"S":"Up","v":"1","p":"1"}]}"#,
            r#"{"topic":"publicTrade.BTCUSDT","data":{"T":1}}"#,
        ];
        for case in cases {
            let result = parse_frame(case);
            assert!(result.is_err(), "{case} parsed as {result:?}");
        }
    }

    #[test]
    fn unknown_frames_are_told_apart() {
        for case in [
            r#"{"topic":"tickers.BTCUSDT","type":"snapshot","data":{}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"weird","data":{"b":[],"a":[],"u":1}}"#,
            r#"{"hello":"world"}"#,
        ] {
            match parse_frame(case) {
                Err(e) => assert!(e.is_unknown(), "{case}: {e}"),
                Ok(f) => panic!("{case} parsed as {f:?}"),
            }
        }
        let Err(e) = parse_frame("{") else {
            panic!("parsed")
        };
        assert!(!e.is_unknown());
    }

    #[test]
    fn subscribe_request_serializes() {
        let args = ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"].map(String::from);
        let req = OpRequest {
            req_id: Some("1".into()),
            op: "subscribe",
            args: &args,
        };
        assert_eq!(
            serde_json::to_string(&req).expect("json"),
            r#"{"req_id":"1","op":"subscribe","args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT"]}"#
        );
        let ping = OpRequest {
            req_id: None,
            op: "ping",
            args: &[],
        };
        assert_eq!(
            serde_json::to_string(&ping).expect("json"),
            r#"{"op":"ping"}"#
        );
    }
}

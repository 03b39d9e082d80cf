//! Bybit v5 private, trade and signed-REST shapes the order desk reads (serde structs), parsed
//! from text frames without panicking. Decimals arrive as strings and are parsed here.

use serde::Deserialize;
use serde_json::Value;

/// One frame from the private stream or the trade stream.
#[derive(Debug, PartialEq)]
pub enum PrivateFrame {
    Orders(Vec<OrderUpdate>),
    Executions(Vec<Execution>),
    Positions(Vec<PositionUpdate>),
    Wallet(Option<f64>),
    /// `op` replies on the private stream: auth, subscribe, pong.
    Op {
        op: String,
        success: bool,
        ret_msg: String,
    },
    /// A trade-stream reply: `{"reqId","retCode","retMsg","op","data":{orderId, orderLinkId}}`.
    TradeReply {
        req_id: Option<String>,
        op: String,
        code: i64,
        msg: String,
    },
    Other,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderUpdate {
    pub symbol: String,
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_link_id: String,
    pub side: String,
    #[serde(default, deserialize_with = "decimal")]
    pub price: f64,
    #[serde(deserialize_with = "decimal")]
    pub qty: f64,
    pub order_status: String,
    #[serde(default, deserialize_with = "decimal")]
    pub leaves_qty: f64,
    #[serde(default, deserialize_with = "decimal")]
    pub cum_exec_qty: f64,
    #[serde(default, deserialize_with = "decimal")]
    pub cum_exec_value: f64,
    #[serde(default)]
    pub order_type: String,
    #[serde(default)]
    pub time_in_force: String,
    #[serde(default)]
    pub reject_reason: String,
    #[serde(default, deserialize_with = "millis")]
    pub updated_time: i64,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub symbol: String,
    #[serde(default)]
    pub order_link_id: String,
    pub exec_id: String,
    #[serde(default)]
    pub exec_type: String,
    #[serde(deserialize_with = "decimal")]
    pub exec_qty: f64,
    #[serde(deserialize_with = "decimal")]
    pub exec_price: f64,
    #[serde(default)]
    pub is_maker: bool,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionUpdate {
    pub symbol: String,
    #[serde(default)]
    pub side: String,
    #[serde(deserialize_with = "decimal")]
    pub size: f64,
    /// `entryPrice` on the stream, `avgPrice` over REST.
    #[serde(default, alias = "avgPrice", deserialize_with = "decimal")]
    pub entry_price: f64,
    #[serde(default, deserialize_with = "decimal")]
    pub cum_realised_pnl: f64,
    #[serde(default, deserialize_with = "millis")]
    pub updated_time: i64,
}

impl PositionUpdate {
    /// Signed: long positive, short negative.
    pub fn signed_size(&self) -> f64 {
        if self.side == "Sell" {
            -self.size
        } else {
            self.size
        }
    }
}

/// One text frame from /v5/private or /v5/trade. The private stream's replies say `ret_msg`,
/// the trade stream's `retCode`/`retMsg`/`reqId`.
pub fn parse(text: &str) -> Result<PrivateFrame, serde_json::Error> {
    let mut raw: Value = serde_json::from_str(text)?;
    let text_of =
        |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let data = raw.get_mut("data").map(Value::take).unwrap_or(Value::Null);
    if let Some(topic) = raw.get("topic").and_then(Value::as_str) {
        return Ok(match topic {
            "order" => PrivateFrame::Orders(serde_json::from_value(data)?),
            "execution" => PrivateFrame::Executions(serde_json::from_value(data)?),
            "position" => PrivateFrame::Positions(serde_json::from_value(data)?),
            "wallet" => PrivateFrame::Wallet(usdt_balance(&data)),
            _ => PrivateFrame::Other,
        });
    }
    if let Some(code) = raw.get("retCode").and_then(Value::as_i64) {
        return Ok(PrivateFrame::TradeReply {
            req_id: raw.get("reqId").and_then(id_text),
            op: text_of(&raw, "op"),
            code,
            msg: text_of(&raw, "retMsg"),
        });
    }
    Ok(match raw.get("op").and_then(Value::as_str) {
        Some(op) => PrivateFrame::Op {
            op: op.to_string(),
            success: raw.get("success").and_then(Value::as_bool).unwrap_or(false),
            ret_msg: text_of(&raw, "ret_msg"),
        },
        None => PrivateFrame::Other,
    })
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn usdt_balance(data: &Value) -> Option<f64> {
    let coins = data.get(0)?.get("coin")?.as_array()?;
    let usdt = coins
        .iter()
        .find(|c| c.get("coin") == Some(&Value::from("USDT")))?;
    usdt.get("walletBalance")?.as_str()?.parse().ok()
}

/// A signed REST read's `result.list`, or Bybit's error.
pub fn rest_list<T: for<'de> Deserialize<'de>>(body: &str) -> Result<Vec<T>, String> {
    rest_page(body).map(|(list, _)| list)
}

/// A signed REST read's `result.list` and `result.nextPageCursor` ("" on the last page).
pub fn rest_page<T: for<'de> Deserialize<'de>>(body: &str) -> Result<(Vec<T>, String), String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wrapper {
        ret_code: i64,
        #[serde(default)]
        ret_msg: String,
        #[serde(default)]
        result: Option<Value>,
    }
    let w: Wrapper = serde_json::from_str(body).map_err(|e| format!("invalid response: {e}"))?;
    if w.ret_code != 0 {
        return Err(format!("exchange error {}: {}", w.ret_code, w.ret_msg));
    }
    let mut result = w.result.unwrap_or(Value::Null);
    let cursor = result
        .get("nextPageCursor")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let list = result
        .get_mut("list")
        .map(Value::take)
        .unwrap_or(Value::Array(vec![]));
    let list = serde_json::from_value(list).map_err(|e| format!("invalid list: {e}"))?;
    Ok((list, cursor))
}

/// Bybit's decimals are strings ("0.001"); an empty string is zero.
fn decimal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) if s.is_empty() => Ok(0.0),
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| serde::de::Error::custom("not a number")),
        Value::Null => Ok(0.0),
        other => Err(serde::de::Error::custom(format!("not a decimal: {other}"))),
    }
}

/// Millisecond times arrive as strings ("1672364262444") or numbers.
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) if s.is_empty() => Ok(0),
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("not an integer")),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_execution_position_and_wallet_frames() {
        let order = r#"{"id":"x","topic":"order","creationTime":1,"data":[{"category":"linear","symbol":"BTCUSDT","orderId":"o1","orderLinkId":"hl7","side":"Buy","orderType":"Limit","timeInForce":"GTC","price":"100.5","qty":"0.002","orderStatus":"PartiallyFilled","rejectReason":"EC_NoError","avgPrice":"100.5","leavesQty":"0.001","cumExecQty":"0.001","cumExecValue":"0.1005","cumExecFee":"0","updatedTime":"1700000000123"}]}"#;
        let PrivateFrame::Orders(o) = parse(order).expect("order") else {
            panic!("not orders")
        };
        assert_eq!(o[0].order_link_id, "hl7");
        assert_eq!(
            (o[0].price, o[0].qty, o[0].leaves_qty),
            (100.5, 0.002, 0.001)
        );
        assert_eq!(o[0].updated_time, 1_700_000_000_123);
        let exec = r#"{"topic":"execution","data":[{"symbol":"BTCUSDT","orderLinkId":"hl7","execId":"e1","execType":"Trade","execQty":"0.001","execPrice":"100.5","isMaker":true}]}"#;
        let PrivateFrame::Executions(e) = parse(exec).expect("exec") else {
            panic!("not executions")
        };
        assert!(e[0].is_maker && e[0].exec_id == "e1");
        let pos = r#"{"topic":"position","data":[{"symbol":"BTCUSDT","side":"Sell","size":"0.003","entryPrice":"101","cumRealisedPnl":"-0.2","updatedTime":"5"}]}"#;
        let PrivateFrame::Positions(p) = parse(pos).expect("pos") else {
            panic!("not positions")
        };
        assert_eq!((p[0].signed_size(), p[0].entry_price), (-0.003, 101.0));
        let wallet =
            r#"{"topic":"wallet","data":[{"coin":[{"coin":"USDT","walletBalance":"99999.5"}]}]}"#;
        assert_eq!(
            parse(wallet).expect("wallet"),
            PrivateFrame::Wallet(Some(99999.5))
        );
    }

    #[test]
    fn replies_on_both_streams() {
        let auth = r#"{"success":false,"ret_msg":"Error sign","op":"auth","conn_id":"c"}"#;
        assert_eq!(
            parse(auth).expect("auth"),
            PrivateFrame::Op {
                op: "auth".into(),
                success: false,
                ret_msg: "Error sign".into()
            }
        );
        let reply = r#"{"reqId":"9","retCode":110007,"retMsg":"ab not enough","op":"order.create","data":{},"connId":"c"}"#;
        assert_eq!(
            parse(reply).expect("reply"),
            PrivateFrame::TradeReply {
                req_id: Some("9".into()),
                op: "order.create".into(),
                code: 110007,
                msg: "ab not enough".into()
            }
        );
        assert!(parse("nope").is_err());
    }

    #[test]
    fn rest_lists_and_errors() {
        let ok = r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"symbol":"BTCUSDT","side":"Buy","size":"0.01","avgPrice":"99"}]}}"#;
        let list: Vec<PositionUpdate> = rest_list(ok).expect("list");
        assert_eq!((list[0].signed_size(), list[0].entry_price), (0.01, 99.0));
        let paged = r#"{"retCode":0,"result":{"list":[],"nextPageCursor":"page_args%3D2"}}"#;
        let (empty, next) = rest_page::<PositionUpdate>(paged).expect("page");
        assert!(empty.is_empty() && next == "page_args%3D2");
        let bad = r#"{"retCode":10004,"retMsg":"error sign!","result":{}}"#;
        let e = rest_list::<PositionUpdate>(bad).expect_err("error");
        assert!(e.contains("10004"), "{e}");
    }
}

//! `GET /v5/market/instruments-info`: the exchange's tick size and lot step for a symbol.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::tls::Tls;

#[derive(Debug, Error)]
pub enum RestError {
    #[error("request failed: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("invalid response: {0}")]
    Json(#[from] serde_json::Error),
    #[error("exchange error {code}: {msg}")]
    Api { code: i64, msg: String },
    #[error("unknown symbol ({0})")]
    UnknownSymbol(String),
    #[error("invalid {field} {value:?}")]
    Decimal { field: &'static str, value: String },
}

/// What the exchange says about an instrument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstrumentSpec {
    pub tick_size: f64,
    pub lot_size: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wrapper {
    ret_code: i64,
    #[serde(default)]
    ret_msg: String,
    #[serde(default)]
    result: Option<ResultList>,
}

#[derive(Deserialize)]
struct ResultList {
    #[serde(default)]
    list: Vec<InstrumentInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstrumentInfo {
    #[serde(default)]
    symbol: String,
    price_filter: PriceFilter,
    lot_size_filter: LotSizeFilter,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceFilter {
    tick_size: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LotSizeFilter {
    qty_step: String,
}

/// Bybit's "params error" family: an unknown symbol is reported this way by some categories.
const RET_PARAMS_ERROR: i64 = 10001;

pub fn parse_instruments_info(body: &str, symbol: &str) -> Result<InstrumentSpec, RestError> {
    let wrapper: Wrapper = serde_json::from_str(body)?;
    match wrapper.ret_code {
        0 => {}
        RET_PARAMS_ERROR => return Err(RestError::UnknownSymbol(wrapper.ret_msg)),
        code => {
            return Err(RestError::Api {
                code,
                msg: wrapper.ret_msg,
            });
        }
    }
    let list = wrapper.result.map(|r| r.list).unwrap_or_default();
    let info = list
        .into_iter()
        .find(|i| i.symbol.is_empty() || i.symbol == symbol)
        .ok_or_else(|| RestError::UnknownSymbol("instruments-info returned no entry".into()))?;
    Ok(InstrumentSpec {
        tick_size: positive("priceFilter.tickSize", &info.price_filter.tick_size)?,
        lot_size: positive("lotSizeFilter.qtyStep", &info.lot_size_filter.qty_step)?,
    })
}

fn positive(field: &'static str, value: &str) -> Result<f64, RestError> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(RestError::Decimal {
            field,
            value: value.chars().take(32).collect(),
        }),
    }
}

/// Blocking client (one call per new symbol); run it on a blocking thread.
#[derive(Clone)]
pub struct RestClient {
    agent: ureq::Agent,
    base_url: String,
    category: String,
}

impl RestClient {
    pub fn new(base_url: &str, category: &str, timeout: Duration, tls: &Tls) -> Self {
        let roots: Vec<Certificate<'static>> = tls
            .roots
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        let tls_config = TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(tls.provider.clone())
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls_config)
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("hftlive-connector/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
            base_url: base_url.trim_end_matches('/').to_string(),
            category: category.to_string(),
        }
    }

    pub fn url(&self, symbol: &str) -> String {
        // The symbol was checked to be [A-Za-z0-9_-], so it needs no escaping.
        format!(
            "{}/v5/market/instruments-info?category={}&symbol={symbol}",
            self.base_url, self.category
        )
    }

    /// A GET with extra headers (signed reads): the body, whatever the status (Bybit's retCode
    /// says more than the status does).
    pub fn get_body(
        &self,
        path_and_query: &str,
        headers: &[(&str, String)],
    ) -> Result<String, RestError> {
        let mut request = self
            .agent
            .get(&format!("{}{path_and_query}", self.base_url));
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let mut response = request.call().map_err(|e| RestError::Http(e.to_string()))?;
        response
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()
            .map_err(|e| RestError::Http(e.to_string()))
    }

    /// A POST of a JSON body with extra headers (signed requests): the body, whatever the status.
    pub fn post_body(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<String, RestError> {
        let mut request = self
            .agent
            .post(&format!("{}{path}", self.base_url))
            .header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let mut response = request
            .send(body)
            .map_err(|e| RestError::Http(e.to_string()))?;
        response
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()
            .map_err(|e| RestError::Http(e.to_string()))
    }

    pub fn instrument(&self, symbol: &str) -> Result<InstrumentSpec, RestError> {
        let mut response = self
            .agent
            .get(&self.url(symbol))
            .call()
            .map_err(|e| RestError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| RestError::Http(e.to_string()))?;
        if status != 200 {
            // Bybit wraps most errors in a 200; anything else may still carry a retCode.
            return match parse_instruments_info(&body, symbol) {
                Err(e @ (RestError::UnknownSymbol(_) | RestError::Api { .. })) => Err(e),
                _ => Err(RestError::Status(status)),
            };
        }
        parse_instruments_info(&body, symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BTCUSDT: InstrumentSpec = InstrumentSpec {
        tick_size: 0.1,
        lot_size: 0.001,
    };

    fn error_of(body: &str, symbol: &str) -> RestError {
        match parse_instruments_info(body, symbol) {
            Ok(spec) => panic!("accepted: {spec:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_tick_and_lot() {
        let body = r#"{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT",
            "contractType":"LinearPerpetual","status":"Trading","priceScale":"2",
            "priceFilter":{"minPrice":"0.10","maxPrice":"199999.80","tickSize":"0.10"},
            "lotSizeFilter":{"maxOrderQty":"100.000","minOrderQty":"0.001","qtyStep":"0.001"}}],
            "nextPageCursor":""},"retExtInfo":{},"time":1672712468011}"#;
        let spec = parse_instruments_info(body, "BTCUSDT").expect("spec");
        assert_eq!(spec, BTCUSDT);
    }

    #[test]
    fn empty_list_or_params_error_is_unknown_symbol() {
        for body in [
            r#"{"retCode":0,"retMsg":"OK","result":{"category":"","list":[]},"time":1}"#,
            r#"{"retCode":10001,"retMsg":"params error: symbol invalid","result":{},"time":1}"#,
        ] {
            let e = error_of(body, "NOPE");
            assert!(matches!(e, RestError::UnknownSymbol(_)), "{body}: {e}");
        }
        let other = r#"{"retCode":10006,"retMsg":"Too many visits!","result":{},"time":1}"#;
        let e = error_of(other, "X");
        assert!(matches!(e, RestError::Api { code: 10006, .. }), "{e}");
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(matches!(error_of("<html>", "X"), RestError::Json(_)));
        let bad_tick = r#"{"retCode":0,"result":{"list":[{"symbol":"X","priceFilter":{"tickSize":"0"},"lotSizeFilter":{"qtyStep":"1"}}]}}"#;
        assert!(matches!(error_of(bad_tick, "X"), RestError::Decimal { .. }));
    }

    /// Manual check of https with the system store, e.g. a local TLS server whose CA is in
    /// SSL_CERT_FILE: `HFTLIVE_REST_TLS_URL=https://localhost:18443 cargo test -- --ignored`.
    #[test]
    #[ignore = "needs a TLS server named by HFTLIVE_REST_TLS_URL"]
    fn fetches_over_https_with_system_roots() {
        let Ok(url) = std::env::var("HFTLIVE_REST_TLS_URL") else {
            return;
        };
        let tls = Tls::from_system_store().expect("tls");
        let client = RestClient::new(&url, "linear", Duration::from_secs(5), &tls);
        let spec = client.instrument("BTCUSDT").expect("instrument over https");
        assert_eq!(spec, BTCUSDT);
    }

    #[test]
    fn url_uses_the_configured_category() {
        let tls = Tls::from_system_store().expect("tls");
        let timeout = Duration::from_secs(1);
        let c = RestClient::new("http://127.0.0.1:1/", "linear", timeout, &tls);
        assert_eq!(
            c.url("BTCUSDT"),
            "http://127.0.0.1:1/v5/market/instruments-info?category=linear&symbol=BTCUSDT"
        );
    }
}

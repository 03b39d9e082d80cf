//! The public WebSocket: connecting (ws:// or wss://), sending `op` requests, and the jittered
//! exponential backoff between attempts.

use std::time::Duration;

use futures_util::{
    SinkExt,
    stream::{SplitSink, SplitStream, StreamExt},
};
use rand::Rng;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream, connect_async_tls_with_config,
    tungstenite::{self, Message},
};

use crate::{bybit::msg::OpRequest, tls::Tls};

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type WsSink = SplitSink<WsStream, Message>;
pub type WsSource = SplitStream<WsStream>;

#[derive(Debug, Error)]
pub enum StreamError {
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("{0}")]
    WebSocket(#[from] tungstenite::Error),
    #[error("cannot encode request: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Opens the public stream; `wss://` uses the system CA store, `ws://` is plain TCP.
pub async fn connect(
    url: &str,
    tls: &Tls,
    timeout: Duration,
) -> Result<(WsSink, WsSource), StreamError> {
    let connector = if url.starts_with("wss://") {
        Connector::Rustls(tls.client_config.clone())
    } else {
        Connector::Plain
    };
    // Nagle off: frames are small and latency matters more than packets.
    let attempt = connect_async_tls_with_config(url, None, true, Some(connector));
    let (ws, _response) = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| StreamError::ConnectTimeout(timeout))??;
    Ok(ws.split())
}

/// Sends `{"req_id":..,"op":..,"args":[..]}`.
pub async fn send_op(
    sink: &mut WsSink,
    req_id: Option<String>,
    op: &str,
    args: &[String],
) -> Result<(), StreamError> {
    let text = serde_json::to_string(&OpRequest { req_id, op, args })?;
    sink.send(Message::text(text)).await?;
    Ok(())
}

/// Exponential backoff with jitter: attempt n waits a random time in [d/2, d], d = min·2ⁿ
/// capped at max, so many connectors do not reconnect in lockstep.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            attempt: 0,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let factor = 2f64.powi(self.attempt.min(30) as i32);
        let ceiling = self.min.mul_f64(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let ceilings = [500, 1000, 2000, 4000, 4000, 4000];
        for ceiling in ceilings {
            let d = b.next_delay().as_millis() as u64;
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d} not in [{}, {ceiling}]",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }

    #[tokio::test]
    async fn connect_refused_is_an_error() {
        let tls = Tls::from_system_store().expect("tls");
        // Port 1 on loopback: nothing listens there.
        let result = connect(
            "ws://127.0.0.1:1/v5/public/linear",
            &tls,
            Duration::from_secs(2),
        )
        .await;
        assert!(result.is_err());
    }
}

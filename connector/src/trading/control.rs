//! The control API on `control_listen`: `GET /trading` (the desk's view), `POST /kill` (the
//! kill switch) and `GET /metrics` (Prometheus text: the connector's hops and IPC counters).
//! Plain HTTP/1.1, one request per connection, for the service and a Prometheus on the compose
//! network; never published to the host.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc::UnboundedSender, oneshot},
    time::timeout,
};
use tracing::{error, info, warn};

use super::link::DeskInput;
use crate::{ipc::IpcStats, metrics};

const READ_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_REQUEST: usize = 8192;

pub fn spawn(addr: SocketAddr, desk: UnboundedSender<DeskInput>, stats: Arc<IpcStats>) {
    tokio::spawn(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                error!(%addr, error = %e, "control API: cannot listen");
                return;
            }
        };
        info!(%addr, "control API listening (GET /trading, POST /kill, GET /metrics)");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, desk.clone(), stats.clone()));
                }
                Err(e) => warn!(error = %e, "control API: accept failed"),
            }
        }
    });
}

async fn serve(mut stream: TcpStream, desk: UnboundedSender<DeskInput>, stats: Arc<IpcStats>) {
    let head = timeout(READ_TIMEOUT, read_head(&mut stream)).await;
    let (status, content_type, body) = match head {
        Ok(Some(head)) if request_line(&head) == ("GET", "/metrics") => {
            (200, PROMETHEUS_TEXT, render_metrics(&stats))
        }
        Ok(Some(head)) => {
            let (status, body) = answer(&head, &desk).await;
            (status, "application/json", body.to_string())
        }
        _ => (
            400,
            "application/json",
            json!({"error": "bad request"}).to_string(),
        ),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The request line and headers (a body, if any, is not needed).
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}

/// (method, path) of the request line.
fn request_line(head: &str) -> (&str, &str) {
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn render_metrics(stats: &IpcStats) -> String {
    let mut out = String::with_capacity(16 * 1024);
    stats.hops.render(&mut out);
    let counters = [
        (
            "hftlive_connector_events_sent_total",
            "Events handed to iceoryx2 for bots, BatchStart and BatchEnd included",
            &stats.sent,
        ),
        (
            "hftlive_connector_send_errors_total",
            "Events iceoryx2 refused",
            &stats.send_errors,
        ),
        (
            "hftlive_connector_requests_total",
            "Requests read from bots",
            &stats.received,
        ),
        (
            "hftlive_connector_request_errors_total",
            "Unreadable requests from bots",
            &stats.receive_errors,
        ),
    ];
    for (name, help, value) in counters {
        metrics::counter(&mut out, name, help, value.load(Ordering::Relaxed));
    }
    out
}

async fn answer(head: &str, desk: &UnboundedSender<DeskInput>) -> (u16, Value) {
    let (method, path) = request_line(head);
    let (tx, rx) = oneshot::channel();
    let input = match (method, path) {
        ("GET", "/trading") => DeskInput::Status(tx),
        ("POST", "/kill") => {
            warn!("control API: kill switch requested");
            DeskInput::Kill(tx)
        }
        (_, "/trading" | "/kill" | "/metrics") => {
            return (405, json!({"error": "method not allowed"}));
        }
        _ => {
            return (
                404,
                json!({"error": "not found: use GET /trading, POST /kill or GET /metrics"}),
            );
        }
    };
    if desk.send(input).is_err() {
        return (503, json!({"error": "the order desk has stopped"}));
    }
    match timeout(READ_TIMEOUT, rx).await {
        Ok(Ok(value)) => (200, value),
        _ => (503, json!({"error": "the order desk did not answer"})),
    }
}

//! The control API on `control_listen`: `GET /trading` (the desk's view) and `POST /kill` (the
//! kill switch). Plain HTTP/1.1, one request per connection, for the service on the compose
//! network; never published to the host.

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc::UnboundedSender, oneshot},
    time::timeout,
};
use tracing::{error, info, warn};

use super::link::DeskInput;

const READ_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_REQUEST: usize = 8192;

pub fn spawn(addr: SocketAddr, desk: UnboundedSender<DeskInput>) {
    tokio::spawn(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                error!(%addr, error = %e, "control API: cannot listen");
                return;
            }
        };
        info!(%addr, "control API listening (GET /trading, POST /kill)");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, desk.clone()));
                }
                Err(e) => warn!(error = %e, "control API: accept failed"),
            }
        }
    });
}

async fn serve(mut stream: TcpStream, desk: UnboundedSender<DeskInput>) {
    let (status, body) = match timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => answer(&head, &desk).await,
        _ => (400, json!({"error": "bad request"})),
    };
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

async fn answer(head: &str, desk: &UnboundedSender<DeskInput>) -> (u16, Value) {
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (tx, rx) = oneshot::channel();
    let input = match (method, path) {
        ("GET", "/trading") => DeskInput::Status(tx),
        ("POST", "/kill") => {
            warn!("control API: kill switch requested");
            DeskInput::Kill(tx)
        }
        (_, "/trading" | "/kill") => return (405, json!({"error": "method not allowed"})),
        _ => {
            return (
                404,
                json!({"error": "not found: use GET /trading or POST /kill"}),
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

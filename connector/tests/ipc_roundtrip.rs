//! End to end on one machine: the connector binary against a tiny Bybit stub (WebSocket + REST),
//! and a real hftbacktest 0.9.4 `LiveBot` over iceoryx2 shared memory. Proves the registration
//! batch, streaming deltas and trades, gap recovery, reconnects and the error events.

use std::{
    cell::RefCell,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    rc::Rc,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt, StreamExt};
use hftbacktest::{
    live::{Instrument, LiveBot, LiveBotBuilder, ipc::iceoryx::IceoryxUnifiedChannel},
    prelude::*,
    types::Bot,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::broadcast,
};
use tokio_tungstenite::tungstenite::Message;

/// What the stub saw and what it serves.
#[derive(Default)]
struct StubState {
    /// Sent whenever an orderbook topic is subscribed.
    snapshot: String,
    /// Every op request received, as (op, args).
    ops: Vec<(String, Vec<String>)>,
    connections: usize,
}

#[derive(Clone, Debug)]
enum StubCmd {
    Send(String),
    Close,
    /// This connection goes silent: no replies, no pongs (the watchdog's case).
    Mute,
}

include!("support/frames.rs");

async fn ws_stub(
    listener: TcpListener,
    state: Arc<Mutex<StubState>>,
    cmds: broadcast::Sender<StubCmd>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
            continue;
        };
        if let Ok(mut s) = state.lock() {
            s.connections += 1;
        }
        let (mut tx, mut rx) = ws.split();
        let mut cmd_rx = cmds.subscribe();
        let state = state.clone();
        tokio::spawn(async move {
            let mut muted = false;
            loop {
                tokio::select! {
                    msg = rx.next() => {
                        let Some(Ok(Message::Text(text))) = msg else { return };
                        if muted { continue }
                        let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { continue };
                        let op = v["op"].as_str().unwrap_or_default().to_string();
                        let args: Vec<String> = v["args"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default();
                        let req_id = v["req_id"].as_str().unwrap_or_default().to_string();
                        let snapshot = match state.lock() {
                            Ok(mut s) => { s.ops.push((op.clone(), args.clone())); s.snapshot.clone() }
                            Err(_) => return,
                        };
                        let reply = if op == "ping" {
                            r#"{"success":true,"ret_msg":"pong","conn_id":"stub","req_id":"","op":"ping"}"#.to_string()
                        } else {
                            format!(r#"{{"success":true,"ret_msg":"","conn_id":"stub","req_id":"{req_id}","op":"{op}"}}"#)
                        };
                        if tx.send(Message::text(reply)).await.is_err() { return }
                        if op == "subscribe" && args.iter().any(|a| a == "orderbook.50.BTCUSDT") && tx.send(Message::text(snapshot)).await.is_err() {
                            return;
                        }
                    }
                    cmd = cmd_rx.recv() => match cmd {
                        Ok(StubCmd::Send(text)) => { if !muted && tx.send(Message::text(text)).await.is_err() { return } }
                        Ok(StubCmd::Mute) => muted = true,
                        Ok(StubCmd::Close) | Err(_) => { let _ = tx.send(Message::Close(None)).await; return }
                    }
                }
            }
        });
    }
}

/// instruments-info: BTCUSDT tick 0.1 / lot 0.001, ETHUSDT tick 0.01 / lot 0.01, others unknown.
async fn rest_stub(listener: TcpListener) {
    while let Ok((mut tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
                match tcp.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => n += k,
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let entry = |s: &str, tick: &str, step: &str| {
                format!(
                    r#"{{"symbol":"{s}","priceFilter":{{"tickSize":"{tick}"}},"lotSizeFilter":{{"qtyStep":"{step}"}}}}"#
                )
            };
            let list = if head.contains("symbol=BTCUSDT") {
                entry("BTCUSDT", "0.10", "0.001")
            } else if head.contains("symbol=ETHUSDT") {
                entry("ETHUSDT", "0.01", "0.01")
            } else {
                String::new()
            };
            let body = format!(
                r#"{{"retCode":0,"retMsg":"OK","result":{{"category":"linear","list":[{list}]}},"time":1}}"#
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(resp.as_bytes()).await;
        });
    }
}

struct Connector(Child);

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type TestBot = LiveBot<IceoryxUnifiedChannel, HashMapMarketDepth>;

/// Feeds the bot until `done` holds or `secs` seconds pass.
fn wait_until(bot: &mut TestBot, what: &str, secs: u64, mut done: impl FnMut(&TestBot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done(bot) {
            return;
        }
        let _ = bot.wait_next_feed(false, 100_000_000);
    }
    panic!("timed out waiting for: {what}");
}

/// One plain HTTP GET on 127.0.0.1: the whole response, head and body.
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect control API");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: connector\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

fn stub_ops(state: &Arc<Mutex<StubState>>) -> Vec<(String, Vec<String>)> {
    state.lock().map(|s| s.ops.clone()).unwrap_or_default()
}

fn connections(state: &Arc<Mutex<StubState>>) -> usize {
    state.lock().map(|s| s.connections).unwrap_or(0)
}

fn b_qty(bot: &TestBot, tick: i64) -> f64 {
    bot.depth(0).bid_qty_at_tick(tick)
}

#[test]
fn connector_feeds_a_live_bot_over_iceoryx2() {
    let unique = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let name = format!("itest{}_{}", std::process::id(), unique % 1_000_000);
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let channel_cfg = dir.join("channel.toml");
    std::fs::write(&channel_cfg, "max_bots = 4\nbuffer_size = 2000\n").expect("channel config");
    // The bot in this process reads the same file through hftbacktest; set before any thread.
    unsafe { std::env::set_var("HFTBACKTEST_CHANNEL_CONFIG", &channel_cfg) };

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let state = Arc::new(Mutex::new(StubState {
        snapshot: book_frame(
            "snapshot",
            100,
            &[("100.0", "1.5"), ("99.9", "2")],
            &[("100.1", "3"), ("100.2", "4")],
        ),
        ..Default::default()
    }));
    let (cmds, _) = broadcast::channel::<StubCmd>(64);
    let (ws_addr, rest_addr): (SocketAddr, SocketAddr) = rt.block_on(async {
        let ws = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
        let rest = TcpListener::bind("127.0.0.1:0").await.expect("bind rest");
        let addrs = (
            ws.local_addr().expect("addr"),
            rest.local_addr().expect("addr"),
        );
        tokio::spawn(ws_stub(ws, state.clone(), cmds.clone()));
        tokio::spawn(rest_stub(rest));
        addrs
    });

    // The control API's port: free now, the connector binds it next.
    let control_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = dir.join("connector.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"ws://{ws_addr}/v5/public/linear\"\nrest_url = \"http://{rest_addr}\"\ncategory = \"linear\"\n\
             ping_interval_s = 1\nstale_after_s = 4\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\nstats_interval_s = 2\n\
             control_listen = \"127.0.0.1:{control_port}\"\n"
        ),
    )
    .expect("config");
    let log_path = dir.join("connector.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut connector = Connector(
        Command::new(env!("CARGO_BIN_EXE_connector"))
            .args(["--name", &name, "--connector", "bybit", "--config"])
            .arg(&config)
            .env("HFTBACKTEST_CHANNEL_CONFIG", &channel_cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn connector"),
    );
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Wait for the connector's channels and its WebSocket connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(log_text().contains("iceoryx2 channels open") && connections(&state) > 0) {
        assert!(
            Instant::now() < deadline,
            "connector did not start:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        log_text().contains("max_bots=4"),
        "channel config not logged:\n{}",
        log_text()
    );

    let errors: Rc<RefCell<Vec<(ErrorKind, String)>>> = Rc::default();
    let seen = errors.clone();
    let instrument = |symbol, tick, lot, trades| {
        let depth = HashMapMarketDepth::new(tick, lot);
        Instrument::new(&name, symbol, tick, lot, depth, trades)
    };
    let mut bot: TestBot = LiveBotBuilder::new()
        .register(instrument("BTCUSDT", 0.1, 0.001, 100))
        // Wrong tick size on purpose: the connector must report it.
        .register(instrument("ETHUSDT", 0.05, 0.01, 0))
        .error_handler(move |e| {
            seen.borrow_mut()
                .push((e.kind, e.value().get_str().unwrap_or_default().to_string()));
            Ok(())
        })
        .build()
        .expect("bot");
    let has_error = |kind: ErrorKind, text: &str| {
        let errors = errors.borrow();
        errors.iter().any(|(k, m)| *k == kind && m.contains(text))
    };

    // 1. Registration batch: the stub's snapshot arrives in the bot's book.
    wait_until(&mut bot, "registration snapshot", 15, |b| {
        b.depth(0).best_bid_tick() == 1000 && b.depth(0).best_ask_tick() == 1001
    });
    assert_eq!(b_qty(&bot, 999), 2.0);
    let subscribed: Vec<String> = stub_ops(&state)
        .into_iter()
        .filter(|(op, _)| op == "subscribe")
        .flat_map(|(_, a)| a)
        .collect();
    assert!(
        subscribed.contains(&"orderbook.50.BTCUSDT".to_string())
            && subscribed.contains(&"publicTrade.BTCUSDT".to_string()),
        "{subscribed:?}"
    );

    // 2. The ETHUSDT tick mismatch comes back as an error event.
    wait_until(&mut bot, "tick size mismatch error", 10, |_| {
        has_error(ErrorKind::Custom(1001), "ETHUSDT")
    });

    // 3. Deltas and trades stream to the bot.
    let send = |text: String| {
        let _ = cmds.send(StubCmd::Send(text));
    };
    send(book_frame(
        "delta",
        101,
        &[("100.0", "0"), ("99.8", "7")],
        &[("100.1", "1")],
    ));
    send(r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1700000000100,"data":[{"T":1700000000099,"s":"BTCUSDT","S":"Sell","v":"0.25","p":"99.9","L":"MinusTick","i":"t1","BT":false}]}"#.to_string());
    wait_until(&mut bot, "delta applied and trade seen", 10, |b| {
        b.depth(0).best_bid_tick() == 999
            && b.last_trades(0)
                .iter()
                .any(|t| t.px == 99.9 && t.qty == 0.25)
    });
    assert_eq!(b_qty(&bot, 998), 7.0);
    assert_eq!(bot.depth(0).ask_qty_at_tick(1001), 1.0);
    let trade = bot
        .last_trades(0)
        .iter()
        .find(|t| t.px == 99.9)
        .cloned()
        .expect("trade");
    assert!(trade.is(LOCAL_SELL_TRADE_EVENT));
    assert_eq!(trade.exch_ts, 1_700_000_000_099_000_000);
    // The control API's /metrics times the trade and the delta from receive to iceoryx2.
    let metrics = get(control_port, "/metrics");
    assert!(
        metrics.starts_with("HTTP/1.1 200") && metrics.contains("text/plain; version=0.0.4"),
        "{metrics}"
    );
    for kind in ["trade", "depth"] {
        let count = format!(
            "hftlive_connector_hop_seconds_count{{hop=\"receive_to_publish\",kind=\"{kind}\"}} "
        );
        let n: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&count))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {count} in\n{metrics}"));
        assert!(n >= 1, "{kind}: {n}");
    }
    assert!(
        metrics.contains("\nhftlive_connector_send_errors_total 0\n"),
        "{metrics}"
    );
    // Malformed frames are survived.
    send("{not json".to_string());
    send(r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"s":"BTCUSDT","b":[["100.0","1"]],"a":[],"u":102}}"#.to_string());
    wait_until(&mut bot, "delta without cts applied", 10, |b| {
        b.depth(0).best_bid_tick() == 1000
    });
    // One exchange message is one batch: the wait answers once, at its end, with all of it applied.
    send(book_frame(
        "delta",
        103,
        &[("99.7", "5"), ("99.6", "6")],
        &[("100.3", "7")],
    ));
    let started = Instant::now();
    let answer = loop {
        let answer = bot.wait_next_feed(false, 5_000_000_000).expect("wait");
        let applied = [
            b_qty(&bot, 997) == 5.0,
            b_qty(&bot, 996) == 6.0,
            bot.depth(0).ask_qty_at_tick(1003) == 7.0,
        ];
        assert!(
            applied.iter().all(|a| *a) || !applied.iter().any(|a| *a),
            "half a message applied: {applied:?}"
        );
        if applied[0] {
            break answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "delta 103 never arrived"
        );
    };
    assert_eq!(
        answer,
        ElapseResult::Ok,
        "answered at the batch's end, not per event"
    );

    // 4. A gap makes the connector resubscribe; the fresh snapshot removes vanished levels.
    if let Ok(mut s) = state.lock() {
        s.snapshot = book_frame("snapshot", 500, &[("98.0", "5")], &[("100.5", "2")]);
    }
    send(book_frame("delta", 110, &[("97.0", "1")], &[]));
    wait_until(&mut bot, "book after gap resync", 10, |b| {
        b.depth(0).best_bid_tick() == 980 && b.depth(0).best_ask_tick() == 1005
    });
    for tick in [1000, 999, 998, 970] {
        assert_eq!(b_qty(&bot, tick), 0.0, "bid at tick {tick} should be gone");
    }
    assert_eq!(bot.depth(0).ask_qty_at_tick(1001), 0.0);
    let ops = stub_ops(&state);
    assert!(
        ops.iter()
            .any(|(op, a)| op == "unsubscribe" && a == &["orderbook.50.BTCUSDT".to_string()]),
        "{ops:?}"
    );

    // 5. The exchange drops the connection: bots hear of it, the connector reconnects and
    //    re-subscribes every symbol, and the new snapshot resets the book.
    if let Ok(mut s) = state.lock() {
        s.snapshot = book_frame("snapshot", 7, &[("97.5", "1")], &[("99.0", "1")]);
    }
    let _ = cmds.send(StubCmd::Close);
    wait_until(&mut bot, "book after reconnect", 15, |b| {
        b.depth(0).best_bid_tick() == 975 && b.depth(0).best_ask_tick() == 990
    });
    let interrupted = has_error(ErrorKind::ConnectionInterrupted, "");
    assert!(interrupted, "{:?}", errors.borrow());
    assert!(connections(&state) >= 2);
    let resubscribed = stub_ops(&state)
        .iter()
        .filter(|(op, a)| op == "subscribe" && a.contains(&"orderbook.50.ETHUSDT".to_string()))
        .count();
    assert!(
        resubscribed >= 2,
        "ETHUSDT not re-subscribed after reconnect"
    );

    // 6. Orders are refused with an error and a rejection, without waiting for a timeout.
    let started = Instant::now();
    let _ = bot.submit_buy_order(0, 1, 97.0, 0.001, TimeInForce::GTC, OrdType::Limit, true);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        bot.orders(0).get(&1).map(|o| o.status),
        Some(Status::Rejected)
    );
    wait_until(&mut bot, "order error", 5, |_| {
        has_error(ErrorKind::OrderError, "")
    });

    // 7. Pings go out every ping_interval_s (1 s here).
    wait_until(&mut bot, "a ping", 5, |_| {
        stub_ops(&state).iter().any(|(op, _)| op == "ping")
    });

    // 8. A silent exchange trips the staleness watchdog (stale_after_s = 4): reconnect.
    let before = connections(&state);
    let _ = cmds.send(StubCmd::Mute);
    wait_until(&mut bot, "reconnect after staleness", 15, |_| {
        connections(&state) > before
    });
    assert!(
        log_text().contains("stale: no message for"),
        "{}",
        log_text()
    );

    // 9. SIGTERM stops the connector cleanly.
    let _ = bot.close();
    drop(bot);
    let pid = connector.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(status)) = connector.0.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "connector did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = log_text();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("stats") && log.contains("gaps=1"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

// Bybit v5 order-book frames for the connector's tests, included by the unit tests in
// src/connector.rs and by the IPC round trip (cargo compiles only top-level files in tests/).

/// An `orderbook.50.BTCUSDT` frame of `kind` ("snapshot" or "delta") with update id `u`.
fn book_frame(kind: &str, u: u64, bids: &[(&str, &str)], asks: &[(&str, &str)]) -> String {
    let side = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(p, q)| format!(r#"["{p}","{q}"]"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"{{"topic":"orderbook.50.BTCUSDT","type":"{kind}","ts":1700000000001,"data":{{"s":"BTCUSDT","b":[{}],"a":[{}],"u":{u},"seq":1}},"cts":1700000000000}}"#,
        side(bids),
        side(asks)
    )
}

"""The web app with a mock (or scripted) source: health, readiness, book vs stream, metrics, tokens, the page."""
from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest

from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from service.app import create_app
from service.book import Book
from service.config import load_settings
from service.events import BookDelta, BookSnapshot, FeedLoss, SourceState, SourceStatus, Trade
from service.protocol import stream_message
from service.sources.base import Source


class ScriptedSource(Source):
    """A source the test drives by hand (through the app's event loop)."""

    def __init__(self, kind: str = "live", exchange: str | None = None) -> None:
        self.kind = kind
        self.exchange = exchange
        self.sink = None

    async def start(self, sink) -> None:
        self.sink = sink
        sink.source_status(SourceStatus(SourceState.STARTING, "scripted"))

    async def stop(self) -> None:
        pass


def rebuild_until(ws, book: Book, seq: int) -> None:
    """Apply stream messages to `book` until it reaches `seq`, checking that numbering stays contiguous."""
    while book.seq < seq:
        message = stream_message.validate_python(ws.receive_json())
        if message.type == "delta":
            book.apply(message.seq, message.bids, message.asks)
        elif message.type == "trade":
            book.advance(message.seq)
        elif message.type == "snapshot":
            book.load(message.seq, message.bids, message.asks)


def test_healthz_and_the_page_say_mock_and_fetch_nothing_from_outside(mock_settings):
    with TestClient(create_app(mock_settings())) as client:
        assert client.get("/healthz").json() == {"status": "alive", "source": "mock", "exchange": None}
        page = client.get("/").text
        assert re.search(r'class="banner banner-mock" data-exchange="".*<strong class="banner-label">MOCK</strong>',
                         page, re.S)
        assert "not a real exchange" in page and "<title>hftlive · MOCK order book</title>" in page
        assert '"source": "mock", "exchange": null' in page   # the page's config
        for asset in ("/", "/static/app.js", "/static/style.css"):
            answer = client.get(asset)
            assert answer.status_code == 200
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", answer.text, re.I), asset
        assert "/v1/book" in client.get("/openapi.json").json()["paths"]


def test_the_page_says_live_and_the_exchange_for_a_live_source():
    settings = load_settings(data_source="live", exchange="simulator")
    with TestClient(create_app(settings, ScriptedSource("live", settings.exchange))) as client:
        page = client.get("/").text
        assert re.search(r'class="banner banner-live" data-exchange="simulator".*'
                         r'<strong class="banner-label">LIVE · simulator</strong>', page, re.S)
        assert "<title>hftlive · LIVE · simulator order book</title>" in page and "MOCK" not in page
        assert "live market data from simulator" in page
        assert '"source": "live", "exchange": "simulator"' in page   # the page's config
        status = client.get("/v1/status").json()
        assert (status["source"], status["exchange"]) == ("live", "simulator")


def test_readyz_turns_200_once_the_source_is_connected_and_data_is_fresh(mock_settings):
    source = ScriptedSource()
    with TestClient(create_app(mock_settings(ready_max_age_s=0.3), source)) as client:
        def ready():
            answer = client.get("/readyz")
            return answer.status_code, answer.json()["reason"]

        assert ready() == (503, "source is starting: scripted")
        client.portal.call(source.sink.source_status, SourceStatus(SourceState.CONNECTED, ""))
        assert ready() == (503, "no data for BTCUSDT yet")
        client.portal.call(source.sink.book_snapshot, BookSnapshot("BTCUSDT", 1, 1, ((600000, 1.0),), ((600001, 2.0),)))
        assert ready() == (200, "ok")
        time.sleep(0.35)
        code, reason = ready()
        assert code == 503 and re.fullmatch(r"BTCUSDT data is 0\.\ds old \(limit 0\.3s\)", reason)
        client.portal.call(source.sink.source_status, SourceStatus(SourceState.STALE, "no feed for 5s"))
        assert ready() == (503, "source is stale: no feed for 5s")


def test_rest_book_equals_the_book_rebuilt_from_the_stream_at_the_same_sequence(mock_settings):
    with TestClient(create_app(mock_settings(mock_event_rate=2000.0))) as client:
        with client.websocket_connect("/v1/stream?symbols=BTCUSDT") as ws:
            first = stream_message.validate_python(ws.receive_json())
            assert first.type == "snapshot" and first.source == "mock"
            book = Book("BTCUSDT")
            book.load(first.seq, first.bids, first.asks)
            time.sleep(0.2)
            rest = client.get("/v1/book", params={"symbol": "BTCUSDT"}).json()
            assert rest["seq"] > first.seq, "no data flowed"
            rebuild_until(ws, book, rest["seq"])
            levels = [[list(level) for level in side] for side in book.top()]
            assert (book.seq, *levels) == (rest["seq"], rest["bids"], rest["asks"])
            top = client.get("/v1/book", params={"depth": 3}).json()
            assert len(top["bids"]) == 3 and len(top["asks"]) == 3
            assert top["bids"][0][0] < top["asks"][0][0]


def test_stream_messages_are_contiguous_labelled_and_priced_in_ticks(mock_settings):
    with TestClient(create_app(mock_settings(mock_event_rate=3000.0, tick_size=(0.5,)))) as client:
        with client.websocket_connect("/v1/stream") as ws:
            messages = [stream_message.validate_python(ws.receive_json()) for _ in range(400)]
    assert [m.type for m in messages[:2]] == ["snapshot", "status"]
    assert {(m.source, m.exchange) for m in messages} == {("mock", None)}
    numbered = [m.seq for m in messages if m.type in ("delta", "trade")]
    assert numbered == list(range(messages[0].seq + 1, messages[0].seq + 1 + len(numbered)))
    assert {"delta", "trade"} <= {m.type for m in messages}
    prices = [m.price for m in messages if m.type == "trade"]
    prices += [p for m in messages if m.type in ("delta", "snapshot") for p, _ in (*m.bids, *m.asks)]
    assert all(Decimal(repr(p)) % Decimal("0.5") == 0 for p in prices)
    assert all(m.side in ("buy", "sell") and m.qty > 0 for m in messages if m.type == "trade")


def test_trades_are_newest_first_and_limited(mock_settings):
    with TestClient(create_app(mock_settings(mock_event_rate=3000.0))) as client:
        time.sleep(0.3)
        body = client.get("/v1/trades", params={"limit": 5}).json()
    assert (body["source"], body["exchange"]) == ("mock", None) and len(body["trades"]) == 5
    seqs = [t["seq"] for t in body["trades"]]
    assert seqs == sorted(seqs, reverse=True)


def test_unknown_symbols_are_refused_clearly(mock_settings):
    with TestClient(create_app(mock_settings())) as client:
        answer = client.get("/v1/book", params={"symbol": "DOGEUSDT"})
        assert answer.status_code == 404
        assert answer.json()["detail"] == "unknown symbol 'DOGEUSDT'; this service serves BTCUSDT"
        with client.websocket_connect("/v1/stream?symbols=DOGEUSDT") as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == 4404 and "DOGEUSDT" in closed.value.reason


def test_metrics_count_events_clients_and_source_state(mock_settings):
    with TestClient(create_app(mock_settings(mock_event_rate=2000.0))) as client:
        with client.websocket_connect("/v1/stream") as ws:
            for _ in range(50):
                ws.receive_json()
            during = client.get("/metrics").text
        time.sleep(0.05)
        after = client.get("/metrics").text

    def value(text, name):
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert match, name
        return float(match.group(1))

    assert value(during, 'hftlive_events_in_total{kind="delta",symbol="BTCUSDT"}') > 0
    assert value(during, 'hftlive_events_in_total{kind="trade",symbol="BTCUSDT"}') > 0
    assert value(during, "hftlive_events_out_total") >= 50
    assert value(during, "hftlive_stream_clients") == 1
    assert value(after, "hftlive_stream_clients") == 0
    assert value(during, 'hftlive_source_state{hftlive_source_state="connected",source="mock"}') == 1
    assert value(during, 'hftlive_service_info{connector="bybit_hft",exchange="",source="mock",symbols="BTCUSDT"}') == 1
    assert value(during, "hftlive_slow_consumers_total") == 0
    assert value(during, 'hftlive_feed_lag_seconds_count{symbol="BTCUSDT"}') > 0
    assert 0 <= value(during, 'hftlive_last_event_age_seconds{symbol="BTCUSDT"}') < 1


def test_the_token_guards_the_api_and_stream_but_not_health_metrics_or_page(mock_settings):
    with TestClient(create_app(mock_settings(api_token="s3cret"))) as client:
        for path in ("/v1/status", "/v1/book", "/v1/trades"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/v1/book").headers["www-authenticate"] == "Bearer"
        for path in ("/healthz", "/readyz", "/metrics", "/"):
            assert client.get(path).status_code == 200, path
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/v1/stream"):
            pass
        assert refused.value.code == 1008
        with client.websocket_connect("/v1/stream?token=s3cret") as ws:
            assert ws.receive_json()["type"] == "snapshot"
        with client.websocket_connect("/v1/stream", headers={"Authorization": "Bearer s3cret"}) as ws:
            assert ws.receive_json()["type"] == "snapshot"


def test_status_reports_the_source_and_each_symbol(mock_settings):
    settings = mock_settings(symbols=("BTCUSDT", "ETHUSDT"), tick_size=(0.1, 0.01))
    with TestClient(create_app(settings)) as client:
        time.sleep(0.1)
        status = client.get("/v1/status").json()
    assert status["source"] == "mock" and status["state"] == "connected" and status["ready"] is True
    assert status["exchange"] is None
    assert status["source_info"]["seed"] == 7
    assert set(status["symbols"]) == {"BTCUSDT", "ETHUSDT"}
    eth = status["symbols"]["ETHUSDT"]
    assert eth["best_bid"] < eth["best_ask"] and eth["seq"] > 0


def test_the_mock_sustains_ten_thousand_events_per_second(mock_settings):
    # Generation is batched per event-loop tick; half the rate leaves room for a busy machine.
    with TestClient(create_app(mock_settings(mock_event_rate=10_000.0))) as client:
        start = client.get("/v1/status").json()["symbols"]["BTCUSDT"]["seq"]
        time.sleep(1.0)
        end = client.get("/v1/status").json()["symbols"]["BTCUSDT"]["seq"]
    assert end - start >= 5_000


def test_every_payload_of_a_live_source_names_its_exchange():
    settings = load_settings(data_source="live", exchange="bybit-testnet")
    source = ScriptedSource("live", settings.exchange)
    with TestClient(create_app(settings, source)) as client:
        with client.websocket_connect("/v1/stream") as ws:
            client.portal.call(source.sink.source_status, SourceStatus(SourceState.CONNECTED, ""))
            client.portal.call(source.sink.book_snapshot,
                               BookSnapshot("BTCUSDT", 1, 2, ((600000, 1.0),), ((600001, 2.0),)))
            client.portal.call(source.sink.book_delta, BookDelta("BTCUSDT", 3, 4, ((600000, 0.5),), ()))
            client.portal.call(source.sink.trade, Trade("BTCUSDT", 5, 6, 600001, 0.25, "buy"))
            stream = [ws.receive_json() for _ in range(6)]
        book = client.get("/v1/book").json()
        trades = client.get("/v1/trades").json()
        status = client.get("/v1/status").json()
        health, ready = client.get("/healthz").json(), client.get("/readyz").json()
        metrics = client.get("/metrics").text
    assert [m["type"] for m in stream] == ["snapshot", "status", "status", "snapshot", "delta", "trade"]
    assert all(stream_message.validate_python(m).exchange == "bybit-testnet" for m in stream)
    assert stream[4] == {"type": "delta", "source": "live", "exchange": "bybit-testnet", "symbol": "BTCUSDT",
                         "seq": 2, "exch_ts": 3, "local_ts": 4, "bids": [[60000.0, 0.5]], "asks": []}
    for body in (book, trades, trades["trades"][0], status, health, ready):
        assert (body["source"], body["exchange"]) == ("live", "bybit-testnet"), body
    assert ('hftlive_service_info{connector="bybit_hft",exchange="bybit-testnet",source="live",symbols="BTCUSDT"} 1.0'
            in metrics.splitlines())


def test_trades_the_source_lost_are_counted_shown_in_status_and_logged(caplog):
    settings = load_settings(data_source="live", exchange="simulator")
    source = ScriptedSource("live", settings.exchange)
    with TestClient(create_app(settings, source)) as client:
        before = client.get("/v1/status").json()["symbols"]["BTCUSDT"]["trades_lost"]
        client.portal.call(source.sink.feed_loss, FeedLoss("BTCUSDT", 7))
        client.portal.call(source.sink.feed_loss, FeedLoss("BTCUSDT", 2))
        status = client.get("/v1/status").json()
        metrics = client.get("/metrics").text
    assert before == 0 and status["symbols"]["BTCUSDT"]["trades_lost"] == 9
    assert 'hftlive_feed_lost_total{kind="trade",symbol="BTCUSDT"} 9.0' in metrics.splitlines()
    warnings = [r.getMessage() for r in caplog.records if r.name == "hftlive.feed"]
    assert warnings[-1] == ("BTCUSDT: 2 trade(s) lost between the connector and the bot (its IPC buffer "
                            "overflowed); 9 lost since start")


def test_a_live_source_exports_each_hop_of_an_event_in_microseconds():
    settings = load_settings(data_source="live", exchange="simulator")
    source = ScriptedSource("live", settings.exchange)
    with TestClient(create_app(settings, source)) as client:
        now = time.time_ns()
        # Exchange time 3 ms before the connector got it; the connector got it 400 µs before now, the bot
        # read it 150 µs after that.
        client.portal.call(source.sink.trade, Trade("BTCUSDT", now - 3_400_000, now - 400_000, 600001, 0.25, "buy",
                                                    read_ns=now - 250_000))
        metrics = client.get("/metrics").text.splitlines()

    def bucket(hop: str, le: str) -> float:
        line = f'hftlive_hop_seconds_bucket{{hop="{hop}",le="{le}",symbol="BTCUSDT"}}'
        return float(next(m for m in metrics if m.startswith(line)).rsplit(" ", 1)[1])
    assert (bucket("exchange_to_connector", "0.0025"), bucket("exchange_to_connector", "0.005")) == (0.0, 1.0)
    assert (bucket("connector_to_service", "0.00025"), bucket("connector_to_service", "0.1")) == (0.0, 1.0)
    assert (bucket("connector_to_bot", "0.0001"), bucket("connector_to_bot", "0.00025")) == (0.0, 1.0)
    assert (bucket("bot_to_service", "0.0001"), bucket("bot_to_service", "0.1")) == (0.0, 1.0)


def test_the_mock_has_no_hops_to_export(mock_settings):
    with TestClient(create_app(mock_settings())) as client:
        assert "hftlive_hop_seconds_bucket" not in client.get("/metrics").text

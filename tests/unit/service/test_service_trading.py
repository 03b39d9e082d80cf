"""The trading view: /v1/trading and the kill switch proxied to a fake connector control API on 127.0.0.1."""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.config import DEFAULT_CONNECTOR_CONTROL_URL, ConfigError, load_settings
from service.trading import ConnectorControl
from tests.unit.service.test_service_app import ScriptedSource

TOKEN = "k1ll-s3cret"
# The connector's GET /trading, as the contract (issue 12) spells it.
TRADING = {
    "enabled": True, "reason": None, "exchange_url": "ws://simulator:8090/v5/trade", "killed": False,
    "reconciled": True,
    "symbols": {"BTCUSDT": {
        "position": 0.003, "avg_price": 60000.1, "realised_pnl": -0.25, "fills": 4,
        "open_orders": [
            {"order_id": 7, "link_id": "hl7", "side": "Buy", "price": 59999.9, "qty": 0.002, "leaves_qty": 0.001,
             "status": "PartiallyFilled"},
            {"order_id": 8, "link_id": "hl8", "side": "Sell", "price": 60000.5, "qty": 0.001, "leaves_qty": 0.001,
             "status": "New"},
        ]}},
    "limits": {"max_order_qty": 0.01, "max_position": 0.05, "max_open_orders": 10, "max_orders_per_s": 5.0},
}
KILLED = {"killed": True, "cancel_requests": 1, "cancel_all": ["BTCUSDT"]}


class FakeConnector:
    """The connector's control API: canned answers per (method, path), and every request it was sent."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, bytes]] = {
            ("GET", "/trading"): (200, json.dumps(TRADING).encode()),
            ("POST", "/kill"): (200, json.dumps(KILLED).encode()),
        }
        self.delay_s = 0.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                fake.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                time.sleep(fake.delay_s)
                status, body = fake.answers.get((self.command, self.path), (404, b'{"error": "not found"}'))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def connector():
    fake = FakeConnector()
    yield fake
    fake.close()


def live_app(url: str | None, exchange: str = "simulator", **settings):
    values = {"data_source": "live", "exchange": exchange, **settings}
    if url is not None:
        values["connector_control_url"] = url
    config = load_settings(**values)
    return create_app(config, ScriptedSource("live", config.exchange))


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_line(detail: str) -> str:
    assert "\n" not in detail and "Traceback" not in detail, detail
    return detail


@pytest.mark.parametrize("exchange", ["simulator", "bybit-testnet", "bybit"])
def test_trading_is_the_connectors_answer_labelled_with_the_exchange(connector, exchange):
    with TestClient(live_app(connector.url, exchange)) as client:
        answer = client.get("/v1/trading")
    assert answer.status_code == 200
    assert answer.json() == {**TRADING, "source": "live", "exchange": exchange}
    assert [(method, path) for method, path, _ in connector.requests] == [("GET", "/trading")]


def test_the_token_guards_trading_and_never_reaches_the_connector(connector):
    with TestClient(live_app(connector.url, api_token=TOKEN)) as client:
        assert client.get("/v1/trading").status_code == 401
        refused = client.get("/v1/trading", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert connector.requests == []   # a refused client costs the connector nothing
        assert client.get("/v1/trading", headers={"Authorization": f"Bearer {TOKEN}"}).json()["enabled"] is True
    (_, _, headers), = connector.requests
    assert "authorization" not in headers and TOKEN not in json.dumps(headers)


def test_the_kill_switch_is_refused_by_a_service_without_a_token(connector):
    with TestClient(live_app(connector.url)) as client:
        for headers in ({}, {"Authorization": "Bearer anything"}):
            refused = client.post("/v1/trading/kill", headers=headers)
            assert refused.status_code == 403
            assert one_line(refused.json()["detail"]).startswith("the kill switch needs the service's API_TOKEN")
        assert client.get("/v1/trading").status_code == 200   # reading stays open, as every /v1 route
    assert ("POST", "/kill") not in [(method, path) for method, path, _ in connector.requests]


def test_the_kill_switch_needs_the_token_and_is_logged_without_it(connector, caplog):
    caplog.set_level(logging.INFO, logger="hftlive.trading")
    with TestClient(live_app(connector.url, api_token=TOKEN)) as client:
        assert client.post("/v1/trading/kill").status_code == 401
        assert client.post("/v1/trading/kill", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert connector.requests == []
        killed = client.post("/v1/trading/kill", headers={"Authorization": f"Bearer {TOKEN}"})
    assert killed.status_code == 200
    assert killed.json() == {**KILLED, "source": "live", "exchange": "simulator"}
    assert [(method, path) for method, path, _ in connector.requests] == [("POST", "/kill")]
    assert "authorization" not in connector.requests[0][2]
    warnings = [r.getMessage() for r in caplog.records if r.name == "hftlive.trading" and r.levelno == logging.WARNING]
    assert any("kill switch pulled" in line for line in warnings), warnings
    assert any("killed=True after 1 cancel requests" in line for line in warnings), warnings
    assert TOKEN not in caplog.text


def test_an_unreachable_connector_is_503_with_one_line(connector):
    url = f"http://127.0.0.1:{unused_port()}"
    with TestClient(live_app(url, api_token=TOKEN)) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        down = client.get("/v1/trading", headers=auth)
        kill = client.post("/v1/trading/kill", headers=auth)
    for answer in (down, kill):
        assert answer.status_code == 503
        detail = one_line(answer.json()["detail"])
        assert re.fullmatch(rf"the connector's control API at {url} is unreachable: connection refused", detail)
        assert TOKEN not in detail


def test_a_connector_that_does_not_answer_in_time_is_503():
    # A listening socket nobody accepts from: the connection opens, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        app = live_app(url)
        app.state.service.control.read_timeout_s = 0.3
        with TestClient(app) as client:
            started = time.monotonic()
            answer = client.get("/v1/trading")
            took = time.monotonic() - started
    assert answer.status_code == 503 and took < 2
    assert one_line(answer.json()["detail"]) == (
        f"the connector's control API at {url} did not answer GET /trading within 0.3 s")


def test_a_connector_that_hangs_up_without_an_answer_is_502():
    with socket.socket() as rude:
        rude.bind(("127.0.0.1", 0))
        rude.listen()
        url = f"http://127.0.0.1:{rude.getsockname()[1]}"

        def hang_up() -> None:
            connection, _ = rude.accept()
            connection.recv(4096)
            connection.close()
        threading.Thread(target=hang_up, daemon=True).start()
        with TestClient(live_app(url)) as client:
            answer = client.get("/v1/trading")
    assert answer.status_code == 502
    assert one_line(answer.json()["detail"]).startswith(
        f"the connector's control API at {url} closed the connection without answering GET /trading")


@pytest.mark.parametrize("status, body, expected", [
    (500, b"internal error\nat line 2", "answered GET /trading with HTTP 500: internal error at line 2"),
    (200, b"<html>not json</html>", "answered GET /trading with something other than a JSON object"),
    (200, b'{"enabled": true, "symbols": {"BTCUSDT": {"position": "much"}}}',
     "answered in an unexpected shape: symbols.BTCUSDT.position"),
])
def test_a_connector_answer_off_the_contract_is_502_with_one_line(connector, status, body, expected):
    connector.answers[("GET", "/trading")] = (status, body)
    with TestClient(live_app(connector.url)) as client:
        answer = client.get("/v1/trading")
    assert answer.status_code == 502
    assert expected in one_line(answer.json()["detail"])


def test_a_connector_without_keys_says_why_it_does_not_trade(connector):
    off = {**TRADING, "enabled": False, "reason": "no API keys: market data only", "symbols": {}}
    connector.answers[("GET", "/trading")] = (200, json.dumps(off).encode())
    with TestClient(live_app(connector.url, exchange="bybit-testnet")) as client:
        answer = client.get("/v1/trading").json()
    assert (answer["enabled"], answer["reason"], answer["exchange"]) == (
        False, "no API keys: market data only", "bybit-testnet")


def test_the_mock_has_no_connector_so_trading_is_off(mock_settings):
    with TestClient(create_app(mock_settings(api_token=TOKEN))) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        answer = client.get("/v1/trading", headers=auth)
        kill = client.post("/v1/trading/kill", headers=auth)
        page = client.get("/").text
    assert answer.status_code == 200
    assert answer.json() == {"source": "mock", "exchange": None, "enabled": False,
                             "reason": "the mock source has no connector: trading needs DATA_SOURCE=hft_connector"}
    assert kill.status_code == 409 and one_line(kill.json()["detail"]).startswith("trading is off: the mock source")
    assert '"trading": false' in page


def test_control_url_off_turns_the_trading_view_off():
    with TestClient(live_app("off")) as client:
        answer = client.get("/v1/trading").json()
        page = client.get("/").text
    assert answer["enabled"] is False and answer["reason"].startswith("CONNECTOR_CONTROL_URL is off")
    assert '"trading": false' in page


def test_the_live_page_polls_trading_and_the_schema_lists_both_routes(connector):
    with TestClient(live_app(connector.url, exchange="bybit")) as client:
        page = client.get("/").text
        script = client.get("/static/app.js").text
        schema = client.get("/openapi.json").json()
    assert '"trading": true' in page and 'id="trading"' in page
    assert "/v1/trading" in script and "exchange-${config.exchange}" in script
    assert set(schema["paths"]["/v1/trading"]) == {"get"}
    kill = schema["paths"]["/v1/trading/kill"]["post"]
    assert {"403", "409", "503"} <= set(kill["responses"]) and "401" not in kill["responses"]
    assert "security" not in kill   # without a token nothing opens it: it is refused, not unguarded
    assert connector.requests == []   # serving the page asks the connector nothing


def test_with_a_token_the_kill_switch_declares_bearer_auth(connector):
    with TestClient(live_app(connector.url, api_token=TOKEN)) as client:
        kill = client.get("/openapi.json").json()["paths"]["/v1/trading/kill"]["post"]
    assert kill["security"] == [{"HTTPBearer": []}]
    assert {"401", "409", "503"} <= set(kill["responses"]) and "403" not in kill["responses"]


@pytest.mark.anyio
async def test_concurrent_readers_share_one_request_to_the_connector(connector):
    connector.delay_s = 0.2
    control = ConnectorControl(connector.url)
    answers = []

    async def read() -> None:
        answers.append(await control.trading())

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(read)
    assert answers == [TRADING] * 20
    assert len(connector.requests) == 1
    assert await control.trading() == TRADING and len(connector.requests) == 2   # the next read is a new one


def test_the_control_url_defaults_to_the_connector_for_the_live_source_only(monkeypatch):
    assert load_settings(data_source="live").connector_control_url == DEFAULT_CONNECTOR_CONTROL_URL
    assert DEFAULT_CONNECTOR_CONTROL_URL == "http://connector:8092"
    assert load_settings(data_source="mock").connector_control_url is None
    monkeypatch.setenv("CONNECTOR_CONTROL_URL", "")   # compose's ${VAR:-}: the default
    assert load_settings(data_source="live").connector_control_url == DEFAULT_CONNECTOR_CONTROL_URL
    assert load_settings(data_source="mock").connector_control_url is None
    for off in ("off", "OFF", " off "):
        monkeypatch.setenv("CONNECTOR_CONTROL_URL", off)
        assert load_settings(data_source="live").connector_control_url is None
        assert load_settings(data_source="mock").connector_control_url is None
    for given, kept in [("http://connector:8092/", "http://connector:8092"), ("http://10.0.0.5:9000", None),
                        ("http://[::1]:8092", None), ("HTTP://connector", None),
                        ("http://control.example.internal:80/api/", "http://control.example.internal:80/api")]:
        monkeypatch.setenv("CONNECTOR_CONTROL_URL", given)
        assert load_settings(data_source="live").connector_control_url == (kept or given)


@pytest.mark.parametrize("value, expected", [
    ("https://connector:8092", "must start with http://"),
    ("connector:8092", "must start with http://"),
    ("http://connector:99999", "is not a URL"),
    ("http://connector:port", "is not a URL"),
    ("http://:8092", "has no valid host"),
    ("http://bad_host!:8092", "has no valid host"),
    ("http://user:pw@connector:8092", "must not carry a user or password"),
    ("http://connector:8092/?x=1", "must not have a query or fragment"),
    ("http://connector:0", "port 0 is no port"),
])
def test_a_bad_control_url_is_one_line(monkeypatch, value, expected):
    monkeypatch.setenv("CONNECTOR_CONTROL_URL", value)
    with pytest.raises(ConfigError) as error:
        load_settings(data_source="live")
    line = one_line(str(error.value))
    assert line.startswith(f"bad configuration: CONNECTOR_CONTROL_URL={value!r}: ")
    assert expected in line


def test_a_control_url_for_the_mock_is_refused(monkeypatch):
    monkeypatch.setenv("CONNECTOR_CONTROL_URL", "http://connector:8092")
    with pytest.raises(ConfigError) as error:
        load_settings(data_source="mock")
    assert str(error.value) == ("bad configuration: CONNECTOR_CONTROL_URL='http://connector:8092': the mock source "
                                "has no connector; unset CONNECTOR_CONTROL_URL for DATA_SOURCE=mock")

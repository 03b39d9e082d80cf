"""REST, the WebSocket operations and the control API answer as a Bybit client (or a tester) expects."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from sim_harness import BookClient

BOOK = "orderbook.50.BTCUSDT"
pytestmark = pytest.mark.anyio   # for the async tests


def test_instruments_and_time_answer_like_bybit(start_sim):
    sim = start_sim(symbols="BTCUSDT,ETHUSDT", tick_size="0.1,0.01", lot_size="0.001,0.01", price="60000,3000")
    both = sim.get("/v5/market/instruments-info", category="linear")
    assert (both["retCode"], both["retMsg"], both["retExtInfo"]) == (0, "OK", {})
    assert [i["symbol"] for i in both["result"]["list"]] == ["BTCUSDT", "ETHUSDT"]
    assert both["result"]["category"] == "linear" and both["result"]["nextPageCursor"] == ""

    eth = sim.get("/v5/market/instruments-info", category="linear", symbol="ETHUSDT")["result"]["list"]
    assert len(eth) == 1
    assert (eth[0]["status"], eth[0]["contractType"], eth[0]["baseCoin"], eth[0]["quoteCoin"]) == \
        ("Trading", "LinearPerpetual", "ETH", "USDT")
    assert eth[0]["priceFilter"]["tickSize"] == "0.01" and eth[0]["lotSizeFilter"]["qtyStep"] == "0.01"

    assert sim.get("/v5/market/instruments-info", category="linear", symbol="DOGEUSDT")["result"]["list"] == []
    assert sim.get("/v5/market/instruments-info", category="spot")["result"]["list"] == []
    bad = sim.get("/v5/market/instruments-info", category="futures")
    assert (bad["retCode"], bad["retMsg"], bad["result"]) == (10001, "Illegal category", {})

    clock = sim.get("/v5/market/time")
    assert abs(int(clock["result"]["timeSecond"]) - time.time()) < 60
    assert int(clock["result"]["timeNano"]) // 1_000_000_000 == int(clock["result"]["timeSecond"])
    with pytest.raises(urllib.error.HTTPError) as missing:   # an endpoint that is not simulated
        urllib.request.urlopen(sim.rest_url + "/v5/market/tickers?category=linear", timeout=10)
    with missing.value as answer:   # closed: an open keep-alive connection would hold up the stop
        assert answer.code == 404


async def test_websocket_operations_get_bybits_replies(start_sim):
    sim = start_sim(rate=500)
    client = await BookClient.open(sim.ws_url)
    pong = await client.request({"op": "ping", "req_id": "7"})
    bare_pong = await client.request({"op": "ping"})
    # One bad topic fails the whole request: the good one in it is not subscribed either.
    mixed = await client.request({"op": "subscribe", "req_id": "m",
                                  "args": ["publicTrade.BTCUSDT", "orderbook.5.BTCUSDT"]})
    lower = await client.subscribe("orderbook.50.btcusdt")
    ok = await client.subscribe(BOOK)
    twice = await client.subscribe(BOOK)
    nonsense = await client.request({"op": "nope", "req_id": "n"})
    undecodable = await client.request("hello")
    await client.more(BOOK, 2)
    gone = await client.request({"op": "unsubscribe", "req_id": "u", "args": [BOOK]})
    # Paused, a still-subscribed topic would get its last delta before this pong: none must come.
    after = len(client.raw)
    sim.post("/control/pause")
    await client.request({"op": "ping"})
    await client.close()

    conn_id = pong["conn_id"]
    assert pong == {"success": True, "ret_msg": "pong", "conn_id": conn_id, "req_id": "7", "op": "ping"}
    assert bare_pong == {"success": True, "ret_msg": "pong", "conn_id": conn_id, "op": "ping"}
    assert mixed == {"success": False, "ret_msg": "error:handler not found,topic:orderbook.5.BTCUSDT",
                     "conn_id": conn_id, "req_id": "m", "op": "subscribe"}
    assert lower["ret_msg"] == "error:handler not found,topic:orderbook.50.btcusdt"
    assert ok == {"success": True, "ret_msg": "", "conn_id": conn_id, "req_id": f"sub-{BOOK}",
                  "op": "subscribe"}
    assert twice["ret_msg"] == f"error:already subscribed,topic:{BOOK}"
    assert nonsense["success"] is False and nonsense["ret_msg"] == "error:invalid op"
    assert undecodable["success"] is False and undecodable["ret_msg"].startswith("Failed to decode incoming data")
    assert gone["success"] is True and gone["op"] == "unsubscribe"
    assert not any('"topic"' in m for m in client.raw[after:])
    assert client.trades == []   # publicTrade was in the rejected request


def test_control_api_rejects_bad_requests_with_a_reason(start_sim):
    sim = start_sim(symbols="BTCUSDT,ETHUSDT")
    assert sim.call("POST", "/control/rate", value="fast") == (
        400, {"error": "value='fast': give a number from 0 to 1e+06"})
    assert sim.call("POST", "/control/rate", value=2e6)[0] == 400
    assert sim.call("POST", "/control/stall")[0] == 400
    assert sim.call("GET", "/control/book", symbol="BTCUSDT", depth=25)[0] == 400
    assert sim.call("GET", "/control/book")[0] == 400                          # two symbols: say which
    assert sim.call("GET", "/control/trades", symbol="DOGEUSDT")[0] == 404
    assert sim.call("GET", "/control/pause")[0] == 405
    assert sim.call("GET", "/control/nothing")[0] == 404
    assert "/control/skip-u" in sim.get("/control")["routes"]

    assert sim.post("/control/rate", value=20000) == {"ok": True, "rate": 20000.0}
    assert sim.post("/control/pause")["paused"] is True
    stats = sim.get("/control/stats")
    assert stats["rate"] == 20000.0 and stats["paused"] is True and stats["faults"] == {"rate": 1, "pause": 1}
    assert sim.post("/control/resume") == {"ok": True, "paused": False}


async def test_any_undecodable_message_gets_bybits_reply_and_the_connection_stays_open(start_sim):
    sim = start_sim(rate=500)
    undecodable = {
        "a deep array": "[" * 100_000,
        "a deep object": '{"a":' * 50_000 + "1" + "}" * 50_000,
        "a deep req_id": '{"op":"ping","req_id":' + "[" * 990 + "]" * 990 + "}",
        "a deep op": '{"op":' + "[" * 990 + "]" * 990 + "}",
        "invalid UTF-8": b'{"op":"ping","req_id":"\xff"}',
        "not an object": "[1]",
    }

    client = await BookClient.open(sim.ws_url)
    answers = {name: await client.request(raw) for name, raw in undecodable.items()}
    pong = await client.request({"op": "ping", "req_id": "still-here"})
    subscribed = await client.subscribe(BOOK)
    await client.more(BOOK, 1)
    await client.close()

    conn_id = pong["conn_id"]
    for name, answer in answers.items():
        assert answer["success"] is False and answer["conn_id"] == conn_id, name
        assert answer["ret_msg"].startswith("Failed to decode incoming data: "), name
        assert set(answer) == {"success", "ret_msg", "conn_id"}, name   # nothing of the request is echoed
    assert "nested deeper than" in answers["a deep array"]["ret_msg"]
    assert pong == {"success": True, "ret_msg": "pong", "conn_id": conn_id, "req_id": "still-here", "op": "ping"}
    assert subscribed["success"] is True
    assert "Traceback" not in sim.stderr()


BAD_NUMBERS = ["²", "٣", "1e3", "-1", "", " 5", "5 ", "1_0", "0x10", "nan", "inf", "9" * 5000]


def test_control_api_numbers_are_ascii_digits_in_range_or_a_400_line(start_sim):
    sim = start_sim(symbols="BTCUSDT,ETHUSDT")

    def call(method: str, path: str, **params: str) -> tuple[int, str]:
        """Status and body as text: a 500 answers a page, not JSON."""
        request = urllib.request.Request(f"{sim.control_url}{path}?{urllib.parse.urlencode(params)}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    answers = {(path, raw): call(method, path, **{name: raw}, **extra)
               for method, path, name, extra in (("GET", "/control/book", "depth", {"symbol": "BTCUSDT"}),
                                                 ("POST", "/control/rate", "value", {}),
                                                 ("POST", "/control/stall", "seconds", {}))
               for raw in BAD_NUMBERS}
    for (path, raw), (status, text) in answers.items():
        assert status == 400, f"{path} {raw[:20]!r}: {status} {text[:200]}"
        body = json.loads(text)
        assert list(body) == ["error"] and "\n" not in body["error"] and len(body["error"]) < 120, (path, raw, body)
        assert "give" in body["error"], (path, raw, body)
    assert sim.call("GET", "/control/book", symbol="BTCUSDT", depth="²")[1] == {
        "error": "depth='²': give one of 1, 50, 200, 1000"}
    # Nothing bad got through: the rate is still the configured one and nothing stalled.
    stats = sim.get("/control/stats")
    assert stats["rate"] == 50.0 and stats["stalled"] is False and stats["faults"] == {}
    assert sim.get("/control/book", symbol="BTCUSDT", depth="1000")["depth"] == 1000
    assert sim.post("/control/rate", value="2500.5") == {"ok": True, "rate": 2500.5}
    assert sim.post("/control/stall", seconds="0.25")["seconds"] == 0.25
    assert sim.call("POST", "/control/snapshot", symbol="")[0] == 404   # given, but empty: not "every symbol"

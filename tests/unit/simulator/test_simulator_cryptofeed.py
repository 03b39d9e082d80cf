"""cryptofeed's Bybit feed pointed at the simulator (over TLS): its L2 book equals the ground truth at a checkpoint."""
from __future__ import annotations

import asyncio
import ssl
import subprocess
from decimal import Decimal

import pytest
from cryptofeed.connection import RestEndpoint, WebsocketEndpoint
from cryptofeed.defines import FUTURES, L2_BOOK, PERPETUAL, TRADES
from cryptofeed.exchanges import Bybit
from cryptofeed.symbols import Symbols
from sim_harness import truth

TOPIC = "orderbook.200.BTCUSDT"   # what cryptofeed subscribes for a perpetual's L2_BOOK


def self_signed(tmp_path) -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1, made per test run (no key material in the repository)."""
    cert, key = tmp_path / "sim-cert.pem", tmp_path / "sim-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@pytest.mark.anyio
async def test_cryptofeed_rebuilds_the_simulators_book_and_receives_its_trades(
        start_sim, tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    sim = start_sim(rate=2000, seed=5, tls_cert=cert, tls_key=key)
    assert sim.ws_url.startswith("wss://")
    # cryptofeed reads instruments with requests (which trusts REQUESTS_CA_BUNDLE) and streams with websockets
    # (which takes an ssl context through the endpoint's options).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    trusting = ssl.create_default_context(cafile=cert)

    class SimBybit(Bybit):
        # cryptofeed refuses anything but wss:// and reads its endpoints from these two class attributes: the
        # linear stream and Bybit's own instrument routes (linear, and spot, which lists nothing here) moved to
        # the simulator's address; the rest is cryptofeed's Bybit code unchanged.
        websocket_endpoints = [WebsocketEndpoint(
            sim.ws_url, instrument_filter=("TYPE", (FUTURES, PERPETUAL)),
            channel_filter=(Bybit.websocket_channels[L2_BOOK], Bybit.websocket_channels[TRADES]),
            options={"compression": None, "ssl": trusting})]
        rest_endpoints = [RestEndpoint(sim.rest_url, routes=Bybit.rest_endpoints[0].routes)]

    Symbols.clear()   # symbols are cached per exchange id across feeds: read them from the simulator
    books: list[tuple[int, dict]] = []
    trades: list = []

    async def on_book(book, receipt):
        books.append((book.raw["data"]["u"], book.book.to_dict()))

    async def on_trade(trade, receipt):
        trades.append(trade)

    async def until(done, timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not done():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.02)

    feed = SimBybit(symbols=["BTC-USDT-PERP"], channels=[L2_BOOK, TRADES],
                    callbacks={L2_BOOK: on_book, TRADES: on_trade})
    feed.start(asyncio.get_running_loop())
    try:
        await until(lambda: len(books) >= 10 and len(trades) >= 10)
        checkpoint = sim.post("/control/pause")["topics"][TOPIC]["u"]
        await until(lambda: books[-1][0] == checkpoint)
        sent = sim.get("/control/trades", symbol="BTCUSDT")["trades"]
        await until(lambda: trades[-1].id == sent[-1]["i"])
    finally:
        feed.stop()
        await feed.shutdown()
        Symbols.clear()
    _, book = books[-1]
    bids = [[float(p), float(s)] for p, s in sorted(book["bid"].items(), reverse=True)]
    asks = [[float(p), float(s)] for p, s in sorted(book["ask"].items())]
    assert {"bids": bids, "asks": asks} == truth(sim, "BTCUSDT", 200)
    first = [t["i"] for t in sent].index(trades[0].id)
    assert [t.id for t in trades] == [t["i"] for t in sent[first:]]
    assert [(t.side, t.price, t.amount) for t in trades[:5]] == [
        ("buy" if t["S"] == "Buy" else "sell", Decimal(t["p"]), Decimal(t["v"])) for t in sent[first:first + 5]]

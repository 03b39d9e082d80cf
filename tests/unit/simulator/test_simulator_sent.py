"""/control/sent tells when each trade message first left for a client, in ns: before any client got it, after its T."""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest
from websockets.asyncio.client import ClientConnection, connect

from simulator.sent import MAX_LABELS, SendTimes
from simulator.session import Session

TRADES = "publicTrade.BTCUSDT"
pytestmark = pytest.mark.anyio   # for the async tests


class TradeReceiver:
    """A raw client on publicTrade.BTCUSDT: each message's T, and time.time_ns() as recv() handed it over."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.got: list[tuple[int, int]] = []   # (T, received ns), one per trade message

    @classmethod
    async def open(cls, url: str) -> TradeReceiver:
        receiver = cls(await connect(url, open_timeout=10, max_queue=None))
        await receiver.ws.send(json.dumps({"op": "subscribe", "args": [TRADES]}))
        reply = json.loads(await asyncio.wait_for(receiver.ws.recv(), 10))
        assert reply["success"] is True, reply
        return receiver

    async def until(self, done, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out after {len(self.got)} trade messages"
            raw = await asyncio.wait_for(self.ws.recv(), left)
            received = time.time_ns()
            message = json.loads(raw)
            assert message["topic"] == TRADES
            stamps = {trade["T"] for trade in message["data"]}
            assert stamps == {message["ts"]}, message   # every trade of one message carries its stamp
            self.got.append((message["ts"], received))


async def test_every_trade_message_received_has_a_send_time_between_its_stamp_and_its_receipt(start_sim):
    sim = start_sim(rate=2000, seed=5)
    first = await TradeReceiver.open(sim.ws_url)
    second = await TradeReceiver.open(sim.ws_url)
    await first.until(lambda: len(first.got) >= 30)
    sim.post("/control/pause")
    last = sim.get("/control/trades", symbol="BTCUSDT")["trades"][-1]["T"]
    for receiver in (first, second):   # every write done: nothing is left to record
        await receiver.until(lambda r=receiver: r.got and r.got[-1][0] == last)
        await receiver.ws.close()

    answer = sim.get("/control/sent", symbol="BTCUSDT")
    assert set(answer) == {"symbol", "topic", "sent"}
    assert (answer["symbol"], answer["topic"]) == ("BTCUSDT", TRADES)
    sent = answer["sent"]
    stamps = [stamp for stamp, _ in sent]
    assert stamps == sorted(set(stamps)), "one entry per stamp, ordered by T"
    sent_ns = dict(sent)
    for receiver in (first, second):
        assert len(receiver.got) >= 2
        for stamp, received in receiver.got:
            assert stamp in sent_ns, f"T {stamp} was received but has no send time"
            # The stamp is taken before the step; the write that counts is the first among both clients.
            assert stamp * 1_000_000 <= sent_ns[stamp] <= received, (stamp, sent_ns[stamp], received)
    assert any(ns // 1_000_000 != stamp for stamp, ns in sent), "send times no finer than T itself"

    middle = stamps[len(stamps) // 2]
    later = sim.get("/control/sent", symbol="BTCUSDT", since_ms=middle)
    assert later["sent"] == [pair for pair in sent if pair[0] > middle]
    assert 0 < len(later["sent"]) < len(sent)
    assert sim.get("/control/sent", symbol="BTCUSDT", since_ms=stamps[-1])["sent"] == []
    assert sim.get("/control/sent", symbol="BTCUSDT", since_ms=0)["sent"] == sent


async def test_a_named_client_is_timed_from_its_own_writes_not_the_first_clients(start_sim):
    """The simulator writes its clients one after another: timed from the earliest write, a client written later
    is charged the writes before its own. A client that names itself (?client=NAME) gets its own send times."""
    sim = start_sim(rate=2000, seed=6)
    alpha = await TradeReceiver.open(sim.ws_url + "?client=alpha")
    beta = await TradeReceiver.open(sim.ws_url + "?client=beta")
    anonymous = await TradeReceiver.open(sim.ws_url + "?client=not+a+name")   # a space: not a name
    await alpha.until(lambda: len(alpha.got) >= 30)
    sim.post("/control/pause")
    last = sim.get("/control/trades", symbol="BTCUSDT")["trades"][-1]["T"]
    for receiver in (alpha, beta, anonymous):
        await receiver.until(lambda r=receiver: r.got and r.got[-1][0] == last)
        await receiver.ws.close()

    earliest = dict(sim.get("/control/sent", symbol="BTCUSDT")["sent"])
    own_lists = {}
    for name, receiver in (("alpha", alpha), ("beta", beta)):
        answer = sim.get("/control/sent", symbol="BTCUSDT", client=name)
        assert (answer["symbol"], answer["topic"], answer["client"]) == ("BTCUSDT", TRADES, name)
        own = dict(answer["sent"])
        own_lists[name] = own
        for stamp, received in receiver.got:
            assert stamp in own, f"{name} received T {stamp} but has no send time of its own"
            assert earliest[stamp] <= own[stamp] <= received, (name, stamp, earliest[stamp], own[stamp], received)
        middle = sorted(own)[len(own) // 2]
        assert sim.get("/control/sent", symbol="BTCUSDT", client=name, since_ms=middle)["sent"] == [
            [t, ns] for t, ns in sorted(own.items()) if t > middle]
    later = [stamp for stamp in own_lists["alpha"] if stamp in own_lists["beta"]]
    assert any(own_lists["alpha"][t] != own_lists["beta"][t] for t in later), "each client's own write, not one time"

    status, body = sim.call("GET", "/control/sent", symbol="BTCUSDT", client="gamma")
    assert status == 404 and body["error"].startswith("client='gamma': no client of that name was sent BTCUSDT trades")
    assert "named clients: alpha, beta" in body["error"]
    assert sim.call("GET", "/control/sent", symbol="BTCUSDT", client="not a name") == (
        400, {"error": "client='not a name': give a name of letters, digits, '_', '.' or '-', up to 32 "
                       "(as in the client's URL, ?client=NAME)"})


def test_only_the_first_few_names_keep_their_own_send_times():
    """Each name keeps as many stamps as all clients together: the names are bounded, later ones are timed among all."""
    times = SendTimes(keep=10)
    names = [f"c{i}" for i in range(MAX_LABELS + 2)]
    sent = times.on_sent(1000)
    for i, name in enumerate(names):
        sent(5_000 + i, name)
    assert times.labels() == names[:MAX_LABELS]
    assert times.since(label=names[0]) == [(1000, 5_000)]
    assert times.since(label=names[-1]) is None
    assert times.since() == [(1000, 5_000)], "every write still counts among all clients"


def test_sent_rejects_a_bad_symbol_or_since_ms_as_the_other_controls_do(start_sim):
    sim = start_sim(symbols="BTCUSDT,ETHUSDT", price="60000,3000", rate=0)
    unknown = sim.call("GET", "/control/sent", symbol="DOGEUSDT")
    assert unknown == sim.call("GET", "/control/trades", symbol="DOGEUSDT")
    assert unknown == (404, {"error": "unknown symbol 'DOGEUSDT'; the simulator has BTCUSDT, ETHUSDT"})
    assert sim.call("GET", "/control/sent") == sim.call("GET", "/control/trades")   # two symbols: say which
    assert sim.call("GET", "/control/sent")[0] == 400

    assert sim.call("GET", "/control/sent", symbol="BTCUSDT", since_ms="soon") == (
        400, {"error": "since_ms='soon': give a number from 0 to 1e+15"})
    assert sim.call("GET", "/control/sent", symbol="BTCUSDT", since_ms="1.5") == (
        400, {"error": "since_ms='1.5': give a whole number from 0 to 1e+15"})
    for bad in ("-1", "1e3", "", "1" * 17):
        assert sim.call("GET", "/control/sent", symbol="BTCUSDT", since_ms=bad)[0] == 400, bad
    assert sim.call("POST", "/control/sent", symbol="BTCUSDT")[0] == 405
    assert sim.get("/control")["routes"]["/control/sent"] == "GET"
    # Nobody subscribed, no trades: nothing was sent.
    assert sim.get("/control/sent", symbol="ETHUSDT") == {"symbol": "ETHUSDT", "topic": "publicTrade.ETHUSDT",
                                                          "sent": []}


class GatedPeer:
    """Enough of a websockets ServerConnection for a client whose writes end only when the test lets them."""

    remote_address = ("127.0.0.1", 40000)

    def __init__(self) -> None:
        self.transport = self
        self.gate = asyncio.Semaphore(0)
        self.begun = 0
        self.written = 0

    async def send(self, text: str) -> None:
        self.begun += 1
        await self.gate.acquire()
        self.written += 1

    def get_write_buffer_size(self) -> int:
        return 0


async def _settle(done) -> None:
    for _ in range(100):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("the session's writer did not get there")


async def _begin(session: Session, peer: GatedPeer, text: str, on_sent) -> tuple[int, int]:
    """Queue `text` and let its write begin (it then waits at the gate); wall-clock ns around the start."""
    before, target = time.time_ns(), peer.begun + 1
    session.send(text, "trade", on_sent)
    await _settle(lambda: peer.begun >= target)
    return before, time.time_ns()


async def _end(peer: GatedPeer) -> None:
    target = peer.written + 1
    peer.gate.release()
    await _settle(lambda: peer.written >= target)


async def test_the_earliest_write_among_clients_is_kept_per_stamp_and_the_oldest_stamps_go():
    flowing = asyncio.Event()
    flowing.set()
    slow, quick = GatedPeer(), GatedPeer()
    to_slow, to_quick = Session(slow, flowing, Counter()), Session(quick, flowing, Counter())
    writers = [asyncio.create_task(s.write()) for s in (to_slow, to_quick)]
    await asyncio.sleep(0)
    times = SendTimes(keep=2)
    try:
        publish = times.on_sent(1000)
        slow_began = await _begin(to_slow, slow, "trades at 1000", publish)
        quick_began = await _begin(to_quick, quick, "trades at 1000", publish)
        assert times.since() == [], "recorded before any write ended"
        await _end(quick)
        ((stamp, sent),) = times.since()
        assert stamp == 1000 and quick_began[0] <= sent <= quick_began[1], "not when the write began"
        await _end(slow)   # began first, ended last: its start is the earliest
        ((stamp, sent),) = times.since()
        assert stamp == 1000 and slow_began[0] <= sent <= slow_began[1], "not the earliest write among clients"

        again = times.on_sent(1000)   # another publish in the same ms: the first one's time stands
        await _begin(to_quick, quick, "more trades at 1000", again)
        await _end(quick)
        assert times.since() == [(1000, sent)]

        late = times.on_sent(1001)
        await _begin(to_slow, slow, "trades at 1001", late)
        await _begin(to_quick, quick, "trades at 1001", late)
        await _end(quick)
        assert [s for s, _ in times.since()] == [1000, 1001]
        for stamp in (1002, 1003):
            await _begin(to_quick, quick, f"trades at {stamp}", times.on_sent(stamp))
            await _end(quick)
        assert [s for s, _ in times.since()] == [1002, 1003], "keep=2: the oldest stamps should be gone"
        await _end(slow)   # a straggler's write of the dropped 1001, though it began first, does not bring it back
        kept = times.since()
        assert [s for s, _ in kept] == [1002, 1003]
        assert times.since(1002) == kept[1:] and times.since(1003) == []
    finally:
        for writer in writers:
            writer.cancel()
        await asyncio.gather(*writers, return_exceptions=True)

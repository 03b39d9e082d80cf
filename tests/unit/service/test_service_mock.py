"""The mock source's delivery: model events become deltas and trades priced at exact multiples of the tick."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given, settings, strategies as st

from market.instrument import Instrument
from market.model import MarketModel
from service.sources.mock import deliver


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), tick_size=st.sampled_from([0.1, 0.01, 0.5, 0.0001, 0.25, 1e-06]))
def test_delivered_prices_are_multiples_of_the_tick(seed, tick_size):
    inst = Instrument("BTCUSDT", tick_size, 0.001)
    model = MarketModel(inst.tick(60_000.0 if tick_size >= 0.01 else 1.5), seed)
    events = []
    sink = SimpleNamespace(book_delta=events.append, trade=events.append)
    deliver(sink, inst, model.step(500), 1)
    step = Decimal(repr(tick_size))
    prices = [inst.price(e.tick) for e in events if hasattr(e, "tick")]
    prices += [inst.price(t) for e in events if hasattr(e, "bids") for t, _ in (*e.bids, *e.asks)]
    assert prices
    for price in prices:
        assert Decimal(repr(price)) % step == 0, price

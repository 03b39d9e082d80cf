"""The book streams in-process: a client applying every push holds the model's top N, whatever the model does."""
from __future__ import annotations

import pytest

from market.model import MarketModel
from simulator.book import LEVEL1_REPEAT_MS, DepthStream


def apply(held: tuple[dict, dict], push) -> None:
    if push.kind == "snapshot":
        held[0].clear()
        held[1].clear()
    for side, levels in ((held[0], push.bids), (held[1], push.asks)):
        for tick, lots in levels:
            if lots:
                side[tick] = lots
            else:
                del side[tick]   # a correct stream never deletes a level the client does not hold


def top(book: dict[int, int], depth: int, highest: bool) -> dict[int, int]:
    return {t: book[t] for t in sorted(book, reverse=highest)[:depth]}


@pytest.mark.parametrize("depth", [1, 5, 50, 1000])
def test_a_client_of_every_push_holds_the_models_top_levels(depth):
    model = MarketModel(600_000, seed=depth)
    stream = DepthStream("BTCUSDT", depth)
    held: tuple[dict, dict] = ({}, {})
    u = None
    for step in range(400):
        model.step(1 + step % 7)
        push = stream.advance(model.bids, model.asks, seq=step, cts=step, now=step)
        if push is None:
            continue
        if u is not None:
            assert push.u == u + 1
        u = push.u
        assert [t for t, _ in push.bids] == sorted((t for t, _ in push.bids), reverse=True)
        assert [t for t, _ in push.asks] == sorted(t for t, _ in push.asks)
        apply(held, push)
        assert held == (top(model.bids, depth, True), top(model.asks, depth, False))
        assert push.kind == ("snapshot" if depth == 1 or push.u == 1 else "delta")


def test_a_level_that_slides_into_the_window_is_sent_with_the_one_that_left():
    stream = DepthStream("X", 2)
    stream.advance({100: 1, 99: 2, 98: 3}, {101: 1}, 0, 0, 0)
    push = stream.advance({99: 2, 98: 3}, {101: 1}, 1, 1, 1)   # 100 is gone: 98 enters the top 2
    assert push.kind == "delta" and push.bids == [(100, 0), (98, 3)] and push.asks == []


def test_faults_shape_the_next_message():
    stream = DepthStream("X", 50)
    book = ({100: 1}, {101: 1})
    assert stream.advance(*book, 0, 0, 0).u == 1
    assert stream.advance(*book, 0, 0, 0) is None                  # nothing changed: nothing sent
    stream.skip_due = True
    assert stream.advance({100: 2}, {101: 1}, 1, 1, 1).u == 3      # the gap a client must notice
    stream.snapshot_due = True
    snap = stream.advance({100: 2}, {101: 1}, 1, 1, 2)              # forced even without a change
    assert (snap.kind, snap.u, snap.bids) == ("snapshot", 4, [(100, 2)])
    stream.snapshot_due = stream.restart_due = True
    assert stream.advance({100: 2}, {101: 1}, 1, 1, 3).u == 1


def test_an_unchanged_level1_book_is_sent_again_after_3_s_with_the_same_u():
    stream = DepthStream("X", 1)
    first = stream.advance({100: 1, 99: 1}, {101: 1}, 5, 5, 1000)
    assert stream.advance({100: 1, 99: 4}, {101: 1}, 6, 6, 2000) is None   # below the top level: no change
    again = stream.advance({100: 1}, {101: 1}, 7, 7, 1000 + LEVEL1_REPEAT_MS)
    assert (again.kind, again.u, again.bids, again.ts) == ("snapshot", first.u, [(100, 1)], 1000 + LEVEL1_REPEAT_MS)

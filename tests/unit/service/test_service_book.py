"""The order book: snapshots, deltas, deletions, top-N, sequence gaps; exact prices per tick."""
from __future__ import annotations

import pytest

from service.book import Book, SequenceGap
from market.instrument import Instrument


def loaded() -> Book:
    book = Book("BTCUSDT")
    book.load(10, [(100, 1.0), (99, 2.0), (98, 0.0)], [(101, 1.5), (103, 3.0)])
    return book


def test_snapshot_replaces_everything_and_skips_empty_levels():
    book = loaded()
    book.load(20, [(50, 1.0)], [])
    assert (book.seq, book.bids, book.asks) == (20, {50: 1.0}, {})
    assert 98 not in loaded().bids


def test_delta_updates_adds_and_deletes_levels():
    book = loaded()
    book.apply(11, [(100, 4.0), (97, 1.0), (99, 0.0)], [(101, 0), (102, 2.0)])
    assert book.seq == 11
    assert book.bids == {100: 4.0, 97: 1.0}
    assert book.asks == {102: 2.0, 103: 3.0}
    # Deleting a level that is not there is harmless (a delta may repeat a deletion).
    book.apply(12, [(42, 0.0)], [])
    assert book.bids == {100: 4.0, 97: 1.0}


def test_top_n_is_best_first_on_each_side():
    book = loaded()
    book.update([(95, 1.0), (96, 1.0)], [(110, 1.0), (102, 1.0)])
    bids, asks = book.top(2)
    assert bids == [(100, 1.0), (99, 2.0)]
    assert asks == [(101, 1.5), (102, 1.0)]
    all_bids, all_asks = book.top()
    assert [p for p, _ in all_bids] == [100, 99, 96, 95]
    assert [p for p, _ in all_asks] == [101, 102, 103, 110]
    assert (book.best_bid(), book.best_ask()) == (100, 101)
    assert (Book("X").best_bid(), Book("X").best_ask()) == (None, None)


def test_a_sequence_gap_is_detected_and_leaves_the_book_untouched():
    book = loaded()
    with pytest.raises(SequenceGap) as gap:
        book.apply(12, [(100, 9.0)], [])
    assert (gap.value.expected, gap.value.got) == (11, 12)
    assert book.seq == 10 and book.bids[100] == 1.0
    with pytest.raises(SequenceGap):
        book.advance(10)   # a repeat is a gap too
    book.advance(11)
    assert book.seq == 11


@pytest.mark.parametrize("tick_size, tick, shown", [
    (0.1, 600001, "60000.1"), (0.01, 123456789, "1234567.89"), (0.5, 3, "1.5"),
    (0.0001, 12345, "1.2345"), (1e-07, 1234, "0.0001234"), (5.0, 7, "35.0"),
])
def test_prices_print_as_exact_multiples_of_the_tick(tick_size, tick, shown):
    inst = Instrument("X", tick_size, 0.001)
    assert repr(inst.price(tick)) == shown
    assert inst.tick(inst.price(tick)) == tick

"""The live page in a real headless browser (Debian's chromium): a moving ladder and tape, labelled mock, no trading."""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.browser import Chromium
from tests.support.stack import Stack

READ_PAGE = """(() => {
  if (!document.getElementById("trades")) return null;   // still loading
  const rows = (id) => [...document.getElementById(id).rows].map((r) => [...r.cells].map((c) => c.textContent));
  return {banner: document.getElementById("banner").innerText, seq: document.getElementById("seq").textContent,
          state: document.getElementById("state").textContent, asks: rows("asks"), bids: rows("bids"),
          trades: rows("trades"), tradingHidden: document.getElementById("trading").hidden,
          resources: performance.getEntriesByType("resource").map((r) => r.name).concat([location.href])};
})()"""


@pytest.fixture
def browser(tmp_path):
    chromium = Chromium(tmp_path / "profile")
    yield chromium
    chromium.close()


def test_the_page_shows_a_moving_ladder_and_tape_labelled_mock(runtime_images, browser):
    with Stack("mock", MOCK_EVENT_RATE="200", MOCK_SEED="3") as stack:
        tab = browser.open(stack.url + "/")

        async def watch():
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                page = await tab.evaluate(READ_PAGE)
                if page and page["asks"] and page["bids"] and page["trades"]:
                    seen.append(page)
                    if len(seen) == 2:
                        return seen
                    await asyncio.sleep(2)
                else:
                    await asyncio.sleep(0.3)
            raise AssertionError(f"the page never showed a book and trades: {page}")
        first, later = asyncio.run(watch())

    assert first["banner"].startswith("MOCK")
    assert first["state"] == "connected"
    assert first["seq"] != later["seq"]
    assert first["asks"] != later["asks"] or first["bids"] != later["bids"], "the ladder did not move"
    assert first["trades"] != later["trades"], "the tape did not move"
    # Asks are drawn above bids: the lowest ask (last ask row) is above the best bid (first bid row).
    best_ask, best_bid = float(later["asks"][-1][1]), float(later["bids"][0][1])
    assert best_ask > best_bid
    assert all(cell in ("buy", "sell") for cell in (row[3] for row in later["trades"]))
    assert all(url.startswith(stack.url) for url in later["resources"]), later["resources"]
    # The mock has no connector: no trading panel, and the page never asks for /v1/trading.
    assert later["tradingHidden"] is True
    assert not any("/v1/trading" in url for url in later["resources"]), later["resources"]

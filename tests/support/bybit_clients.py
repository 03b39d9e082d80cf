"""pybit pointed at the simulator: its WebSocket and WebSocketTrading, its HTTP client, and bounded waits."""
from __future__ import annotations

import time

from pybit.unified_trading import HTTP


def wait_for(done, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def pointed_at(cls, url: str, refusals: list | None = None):
    """pybit opens (and re-opens) its socket only in _connect(url): the one place to swap in the simulator."""

    class Pointed(cls):
        def _connect(self, _url):
            super()._connect(url)

        def _process_auth_message(self, message):
            # pybit raises on a refused auth inside its reader thread, which then waits on itself in exit():
            # keep what it said and the reply instead.
            try:
                super()._process_auth_message(message)
            except Exception as exc:
                refusals.append((message, str(exc)))   # type: ignore[union-attr]

    return Pointed


def close(client) -> None:
    """pybit's exit() can wait for ever on a reader thread that is gone; close the socket without waiting."""
    client.exited = True
    client._stop_custom_ping_timer()
    client.ws.close()


def http(rest_url: str, api_key: str, api_secret: str) -> HTTP:
    """pybit joins every path to `endpoint`, which it sets to Bybit's host in __post_init__: replaced, and
    checked, before any request can leave."""
    client = HTTP(testnet=False, api_key=api_key, api_secret=api_secret, max_retries=1, retry_delay=0,
                  timeout=5)
    client.endpoint = rest_url
    assert client.endpoint.startswith("http://127.0.0.1:"), client.endpoint
    return client

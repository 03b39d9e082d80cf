"""Fixtures for the service's unit tests: a clean environment and settings for a mock service."""
from __future__ import annotations

import os

import pytest

from tests.support import ROOT


# Variables the service reads; a developer's shell must not leak into the tests.
SERVICE_ENV = (
    "DATA_SOURCE", "EXCHANGE", "CONNECTOR_NAME", "SYMBOL", "SYMBOLS", "TICK_SIZE", "LOT_SIZE", "HOST", "PORT",
    "LOG_LEVEL", "API_TOKEN", "READY_MAX_AGE_S", "CLIENT_BUFFER", "TRADE_HISTORY", "MOCK_EVENT_RATE",
    "MOCK_SEED", "MOCK_PRICE", "HFTBACKTEST_CHANNEL_CONFIG", "LIVE_BOOK_TICKS", "LIVE_STALE_AFTER_S",
    "LIVE_REBUILD_AFTER_S", "LIVE_TRADES_CAPACITY", "CLIENT_MAX_LAG_S", "HTTP_REQUEST_TIMEOUT_S",
    "CONNECTOR_CONTROL_URL",
)


@pytest.fixture(autouse=True)
def clean_service_env(monkeypatch):
    for name in SERVICE_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def anyio_backend():
    """`@pytest.mark.anyio` tests run on asyncio, the service's own loop."""
    return "asyncio"


@pytest.fixture
def mock_settings():
    """A factory: settings for a seeded mock service, with overrides."""
    from service.config import load_settings

    def make(**overrides):
        values = {"data_source": "mock", "mock_seed": 7, "mock_event_rate": 1000.0}
        return load_settings(**{**values, **overrides})
    return make


@pytest.fixture
def service_env():
    """The environment for a `python -m service` subprocess: this interpreter's, minus the service's variables."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SERVICE_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env

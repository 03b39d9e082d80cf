"""Fixtures for the trading tests: a simulator with an account, started on free ports and always stopped."""
from __future__ import annotations

import pytest

from tests.unit.simulator.sim_harness import Sim

API_KEY, API_SECRET = "simkey", "simsecret-0123456789"


@pytest.fixture
def trading_sim(tmp_path):
    """A running simulator whose one account has API_KEY, its secret in a file (as compose secrets are)."""
    secret = tmp_path / "api_secret"
    secret.write_text(API_SECRET + "\n")
    sim = Sim(tmp_path, rate=3000, seed=5, api_key=API_KEY, api_secret_file=secret)
    sim.api_key, sim.api_secret = API_KEY, API_SECRET   # type: ignore[attr-defined]
    yield sim
    sim.stop()

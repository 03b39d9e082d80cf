"""Fixtures for the simulator's tests: simulators started on free ports and always stopped."""
from __future__ import annotations

import pytest
from sim_harness import Sim


@pytest.fixture
def anyio_backend():
    """`@pytest.mark.anyio` tests run on asyncio, the simulator's own loop."""
    return "asyncio"


@pytest.fixture
def start_sim(tmp_path):
    """A factory: start `python -m simulator` with SIM_* settings given as keywords; all are stopped afterwards."""
    started: list[Sim] = []

    def start(**settings) -> Sim:
        started.append(Sim(tmp_path, **settings))
        return started[-1]

    yield start
    for sim in started:
        sim.stop()

"""Fixtures for the simulator's tests: simulators started on free ports and always stopped."""
from __future__ import annotations

import pytest
from sim_harness import Sim


@pytest.fixture
def start_sim(tmp_path):
    """A factory: start `python -m simulator` with SIM_* settings given as keywords; all are stopped afterwards."""
    started: list[Sim] = []

    def start(**settings) -> Sim:
        sim = Sim(tmp_path, **settings)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()

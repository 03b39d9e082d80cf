"""The live source with the wheelhouse's real live hftbacktest, and no connector running."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from service.events import SourceState
from service.sources.live_messages import BotConfig
from service.sources.live_supervisor import LiveSource
from tests.unit.service.test_service_live_source import INSTRUMENTS, Recorder, wait_for


@pytest.fixture
def live_wheel(wheels, tmp_path, monkeypatch):
    """The wheelhouse's hftbacktest for this interpreter, installed offline beside the tests."""
    tag = "cp%d%d" % sys.version_info[:2]
    lock = wheels / f"requirements-{tag}.txt"
    if not lock.is_file():
        pytest.fail(f"the wheelhouse has no {tag} wheels for this test's Python; "
                    f"build them: ./hftlive wheels --python 3.{tag[3:]}")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                    str(wheels), "--require-hashes", "--target", str(target), "-r", str(lock)],
                   check=True)
    monkeypatch.syspath_prepend(str(target))  # spawned bot processes inherit sys.path


def test_with_the_real_live_wheel_and_no_connector_the_source_waits_and_rebuilds(live_wheel, tmp_path):
    channel = tmp_path / "channel.toml"
    channel.write_text("max_bots = 2\nbuffer_size = 1024\n")   # not the 1.1 GB default

    async def scenario():
        sink = Recorder()
        source = LiveSource(BotConfig(f"hftlive_unit_{os.getpid()}", INSTRUMENTS, stale_after_s=1.0,
                                      rebuild_after_s=2.0, channel_config=str(channel)))
        await source.start(sink)
        await wait_for(lambda: sum("(attempt 2)" in e[2] for e in sink.events if e[0] == "status"), 90)
        await source.stop()
        return sink, source
    sink, source = asyncio.run(scenario())
    states = sink.states()
    assert states[:3] == [SourceState.STARTING, SourceState.STARTING, SourceState.WAITING_FOR_CONNECTOR]
    assert SourceState.FAILED not in states and SourceState.CONNECTED not in states
    assert source._process.exitcode == 0   # SIGTERM became an interrupted wait: a clean exit

"""The connector's own cargo tests (unit, and a round trip through iceoryx2 with a real hftbacktest
0.9.4 bot), built from Dockerfile.build's connector-test target on the wheelhouse build's cache."""
from __future__ import annotations

import re
import subprocess
import uuid

from cli import buildx, wheelhouse


def test_the_connectors_cargo_tests_pass(wheels, manifest):
    # A new TEST_RUN runs the tests again (a cached pass proves nothing); --no-cache would also
    # hand the step empty cache mounts, and a full recompile.
    args = {**wheelhouse.build_args(["3." + t[3:] for t in manifest["python_tags"]]), "TEST_RUN": uuid.uuid4().hex}
    command = buildx.command_line("Dockerfile.build", "connector-test", build_args=args,
                                  ca=buildx.SYSTEM_CA_BUNDLE)
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr

    assert done.returncode == 0, output[-4000:]
    results = re.findall(r"test result: (\w+)\. (\d+) passed; (\d+) failed", output)
    assert results and all(verdict == "ok" and failed == "0" for verdict, _, failed in results), results
    assert sum(int(passed) for _, passed, _ in results) >= 40
    assert "ipc_roundtrip" in output    # the round trip with a real bot ran, not only unit tests

"""Fixtures for tests that use the Docker engine: the client, base images, the wheelhouse."""
from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from cli import bases, wheelhouse
from tests.support import ROOT


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="session")
def wheels() -> Path:
    """The wheelhouse `./hftlive wheels` built; the tests check what it exported."""
    house = ROOT / "wheels"
    problems = wheelhouse.verify(house)
    if problems:
        pytest.fail("no usable wheelhouse in ./wheels (run `./hftlive wheels`): " + "; ".join(problems))
    return house


@pytest.fixture(scope="session")
def manifest(wheels: Path) -> dict:
    return json.loads((wheels / "manifest.json").read_text())


@pytest.fixture(scope="session")
def base_image(client):
    """Resolve a base image key to a local image (pulled, or bootstrapped from Debian)."""
    return lambda key: bases.ensure(key, client=client)


@pytest.fixture(scope="session")
def runtime_images(wheels) -> dict[str, str]:
    """hftlive/service and hftlive/service-mock, built by `./hftlive images` from ./wheels."""
    import os
    import subprocess
    import sys

    from cli import images
    done = subprocess.run([sys.executable, "-m", "cli", "images"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=1800)
    if done.returncode != 0:
        pytest.fail(f"./hftlive images failed:\n{done.stderr[-3000:]}")
    return {target: images.tag(target) for target in images.TARGETS}

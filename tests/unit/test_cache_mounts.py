"""BuildKit may run independent stages at once: no cache mount may be written by two of them unlocked.

A cold build once failed at random with `failed to unpack package … File exists` because the
`wheels` and `connector` stages shared one cargo registry mount. These tests read the
Dockerfiles, so that race cannot come back.
"""
import re

import pytest

from tests.support import ROOT


DOCKERFILES = [ROOT / "Dockerfile.build", ROOT / "Dockerfile.runtime"]


def cache_mounts(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """(stage, cache id, mount options) for every `--mount=type=cache` of every RUN step."""
    found = []
    stage = None
    # Join continued lines so that one RUN step is one line.
    for line in re.sub(r"\\\n", " ", text).splitlines():
        header = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+([\w.-]+))?", line, re.I)
        if header:
            stage = header.group(1) or "(unnamed)"
            continue
        for spec in re.findall(r"--mount=(\S+)", line):
            options = dict(part.partition("=")[::2] for part in spec.split(","))
            if options.get("type") == "cache":
                found.append((stage, options.get("id") or options["target"], options))
    return found


def test_the_reader_sees_the_mounts_it_must_judge():
    mounts = cache_mounts((ROOT / "Dockerfile.build").read_text())
    stages = {stage for stage, _, _ in mounts}
    assert {"toolchain", "wheels", "connector", "wheelhouse"} <= stages
    assert cache_mounts("FROM x AS a\nRUN --mount=type=cache,id=c,target=/c \\\n    true\n"
                        "FROM x AS b\nRUN --mount=type=cache,id=c,target=/c,sharing=locked true\n") == [
        ("a", "c", {"type": "cache", "id": "c", "target": "/c"}),
        ("b", "c", {"type": "cache", "id": "c", "target": "/c", "sharing": "locked"})]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_a_cache_used_by_two_stages_is_locked_in_each(dockerfile):
    mounts = cache_mounts(dockerfile.read_text())
    stages_of: dict[str, set[str]] = {}
    for stage, cache, _ in mounts:
        stages_of.setdefault(cache, set()).add(stage)
    unlocked = sorted({f"{cache} in {stage}" for stage, cache, options in mounts
                       if len(stages_of[cache]) > 1 and options.get("sharing") != "locked"})
    assert unlocked == [], "shared between stages but not sharing=locked: " + ", ".join(unlocked)


def test_cargo_registries_are_locked_and_wheels_and_connector_have_their_own():
    # cargo's package lock lives in CARGO_HOME, outside the mount: cargo cannot guard it itself.
    mounts = cache_mounts((ROOT / "Dockerfile.build").read_text())
    registries = [(stage, cache, options) for stage, cache, options in mounts
                  if options["target"].endswith("/cargo/registry")]
    assert {stage for stage, _, _ in registries} == {"wheels", "connector", "connector-test",
                                                     "aarch64-wheel", "aarch64-connector"}
    assert all(options.get("sharing") == "locked" for _, _, options in registries)
    # Their own registries keep the two long compiles, wheels and connector, running side by side.
    registry = {stage: cache for stage, cache, _ in registries}
    assert registry["wheels"] != registry["connector"]
    assert registry["aarch64-wheel"] != registry["aarch64-connector"]

"""`./hftlive up` without Docker: which profiles an exchange starts, what counts as stale, the failure line."""
import pytest

from cli import compose, images, inputs
from tests.support import ROOT
from tests.support.commands import hftlive
from tests.unit.test_build_scripts import load


@pytest.mark.parametrize("exchange, mock, profiles, served, services", [
    (None, False, ("live", "sim"), "simulator", ["connector", "service", "simulator"]),
    ("bybit", False, ("live",), "bybit", ["connector", "service"]),   # real: no simulator
    ("bybit-testnet", False, ("live",), "bybit-testnet", ["connector", "service"]),
    (None, True, ("mock",), None, ["service-mock"]),   # the labelled mock market: no exchange
], ids=["default-is-the-bundled-simulator", "bybit", "bybit-testnet", "mock"])
def test_the_exchange_decides_the_profiles(exchange, mock, profiles, served, services):
    plan = compose.plan(exchange, mock)
    assert (plan.profiles, plan.exchange, sorted(plan.services)) == (profiles, served, services)


@pytest.mark.parametrize("args,line", [
    (["--exchange", "binance"], "no exchange 'binance'; choose from simulator, bybit, bybit-testnet"),
    (["--mock", "--exchange", "bybit"], "--mock serves the mock market, which has no exchange"),
])
def test_bad_arguments_are_one_line_before_any_docker_call(args, line):
    done = hftlive("up", *args)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"hftlive: error: {done.stderr.split('error: ')[1].strip()}"]
    assert line in done.stderr


def test_every_profile_names_images_the_runtime_dockerfile_builds():
    assert set(images.PROFILES) == {"mock", "live", "sim", "bot"}
    assert {t for targets in images.PROFILES.values() for t in targets} <= set(images.stages())


def test_the_unreachable_line_names_the_connectors_error_and_url():
    said = ["2026-11-30T01:00:00Z  INFO connecting url=ws://127.0.0.1:9/v5/public/linear",
            "2026-11-30T01:00:00Z  WARN cannot connect error=IO error: Connection refused (os error 111) "
            "url=ws://127.0.0.1:9/v5/public/linear"]
    assert compose.unreachable_reason(said) == ("IO error: Connection refused (os error 111) "
                                                "(ws://127.0.0.1:9/v5/public/linear)")
    assert compose.unreachable_reason([]) == "no answer from the exchange"


def test_a_fingerprint_moves_with_content_not_with_bytecode(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("one")
    first = inputs.fingerprint(("src",), root=tmp_path)
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert inputs.fingerprint(("src",), root=tmp_path) == first
    assert inputs.fingerprint(("src",), "per-version", root=tmp_path) != first
    (tmp_path / "src" / "a.py").write_text("two")
    assert inputs.fingerprint(("src",), root=tmp_path) != first


def test_what_the_builds_read_exists():
    for path in inputs.WHEELHOUSE + inputs.IMAGES:
        assert (ROOT / path).exists() or path == "wheels/SHA256SUMS", path


def test_an_abi3_wheel_serves_its_cpython_and_every_later_one():
    serves = load("wheelhouse").serves
    abi3 = "hftbacktest-2.4.4-cp311-abi3-manylinux_2_28_x86_64.whl"
    assert [serves(abi3, t) for t in ("cp310", "cp311", "cp313", "cp314")] == [False, True, True, True]
    per_version = "hftbacktest-2.4.4-cp313-cp313-manylinux_2_28_x86_64.whl"
    assert [serves(per_version, t) for t in ("cp311", "cp313", "cp314")] == [False, True, False]

"""Checks before the service starts: DATA_SOURCE=hft_connector needs an hftbacktest built with the live feature."""
from __future__ import annotations

import json
import subprocess
import sys

from .config import ConfigError

# Run in a separate interpreter: importing hftbacktest loads numba and the Rust library,
# which the web process itself never needs (the live bot runs in its own process).
_PROBE = r"""
import json, sys
try:
    import hftbacktest
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "missing": isinstance(exc, ModuleNotFoundError)
                      and getattr(exc, "name", "") == "hftbacktest"}))
    sys.exit(0)
print(json.dumps({
    "version": getattr(hftbacktest, "__version__", "?"),
    "live": bool(getattr(hftbacktest, "LIVE_FEATURE", False)),
    "factory": hasattr(hftbacktest, "HashMapMarketDepthLiveBot") and hasattr(hftbacktest, "LiveInstrument"),
}))
"""

FIX = "build the wheelhouse (./hftlive wheels) and install its hftbacktest wheel, or set DATA_SOURCE=mock"


def check_live_hftbacktest(python: str = sys.executable, timeout: float = 180.0) -> str:
    """The installed hftbacktest's version if it can run the live bot; else a ConfigError saying what to do."""
    need = "DATA_SOURCE=hft_connector needs hftbacktest built with the live feature"
    try:
        done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{need}, but `import hftbacktest` took over {timeout:.0f}s; {FIX}") from None
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"{need}, but `import hftbacktest` crashed ({last}); {FIX}") from None
    if found.get("missing"):
        raise ConfigError(f"{need}, but hftbacktest is not installed; {FIX}")
    if "error" in found:
        raise ConfigError(f"{need}, but `import hftbacktest` fails ({found['error']}); {FIX}")
    if not found["live"]:
        raise ConfigError(
            f"{need}, but the installed hftbacktest {found['version']} was built without it "
            f"(LIVE_FEATURE is False, as in PyPI's wheels); {FIX}")
    if not found["factory"]:
        raise ConfigError(
            f"{need}, but the installed hftbacktest {found['version']} lacks HashMapMarketDepthLiveBot "
            f"(an unpatched build); {FIX}")
    return str(found["version"])

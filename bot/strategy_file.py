"""Loads a strategy file by its path and finds its `strategy(hbt)` function."""
from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import RUNTIME, MissingRuntime, UsageError

MODULE_NAME = "hftlive_strategy"


def load_strategy(path: str | Path) -> Callable[[Any], Any]:
    """The file's `strategy`, after running the file as a module (its own folder importable, like a script's)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a strategy file" if path.is_dir() else "does not exist"
        raise UsageError(f"{path} {what}: give the path of a .py file that defines strategy(hbt)")
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path} is not a Python file: give the path of a .py file that defines strategy(hbt)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        if exc.name in RUNTIME:
            raise MissingRuntime(f"{path} needs {exc.name}, which this Python lacks: run it in the bot image "
                                 "(./hftlive up --strategy FILE), or pip install hftbacktest==2.4.4") from None
        raise UsageError(f"{path} failed to load: {type(exc).__name__}: {exc}{_where(exc, path)}") from None
    except Exception as exc:  # the user's file failed to run: where and why, in one line
        raise UsageError(f"{path} failed to load: {type(exc).__name__}: {exc}{_where(exc, path)}") from None
    function = getattr(module, "strategy", None)
    if function is None:
        raise UsageError(f"{path} defines no `strategy`: it needs a function strategy(hbt) (a numba @njit one)")
    if not callable(function):
        raise UsageError(f"{path}: `strategy` is a {type(function).__name__}, not a function strategy(hbt)")
    return function


def _where(exc: BaseException, path: Path) -> str:
    """' (line N)' of the innermost frame in the strategy file, if any."""
    if isinstance(exc, SyntaxError):
        return f" (line {exc.lineno})" if exc.lineno else ""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if Path(frame.filename).resolve() == path.resolve()]
    return f" (line {lines[-1]})" if lines else ""

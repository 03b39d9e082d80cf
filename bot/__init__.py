"""The strategy runner: one numba `strategy(hbt)` from a file, live through the connector (`python -m bot`)
or on hftlive's recordings (`python -m bot.backtest`)."""


class UsageError(Exception):
    """A mistake the user can fix (a missing file, a bad setting): said in one line, exit status 2."""


class MissingRuntime(Exception):
    """This Python lacks what the runner needs (hftbacktest, its live feature, numba): exit status 3."""


USAGE_EXIT = 2
MISSING_RUNTIME_EXIT = 3
RUNTIME = ("hftbacktest", "numba", "numpy")

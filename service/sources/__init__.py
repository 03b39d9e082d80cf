"""Market-data sources: hftbacktest's live bot (live_supervisor.py in the web process, live_bot.py in the
bot process) or the mock market model (mock.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:   # kept light: the bot process imports this package too
    from ..config import Settings
    from .base import Source


def source_for(settings: Settings) -> Source:
    """The source the settings ask for; nothing from hftbacktest is imported here."""
    if settings.source_kind == "live":
        from .live_supervisor import LiveSource
        return LiveSource.from_settings(settings)
    from .mock import MockSource
    return MockSource.from_settings(settings)

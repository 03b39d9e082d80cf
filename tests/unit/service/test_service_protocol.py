"""The wire contract is written once: the feed's encoders agree with the models, and the page and the README
agree with the close codes."""
from __future__ import annotations

import json
import re
from pathlib import Path

from starlette.testclient import TestClient

from service import protocol
from service.app import create_app
from service.events import SourceState
from service.protocol import CloseCode, DeltaMessage, SnapshotMessage, StatusMessage, TradeMessage

README = Path(__file__).resolve().parents[3] / "service" / "README.md"


def test_each_encoded_message_has_its_models_fields_in_order_and_reads_back_equal():
    built = {
        SnapshotMessage: protocol.snapshot_message("mock", None, "BTCUSDT", 7, 1, 2, 0.1, 0.001,
                                                   [[60000.0, 1.0]], [[60000.1, 0.5]]),
        DeltaMessage: protocol.delta_message("live", "bybit", "BTCUSDT", 8, 3, 4,
                                             [[60000.0, 0.0]], []),
        TradeMessage: protocol.trade_message("live", "bybit-testnet", "BTCUSDT", 9, 5, 6,
                                             60000.1, 0.003, "sell"),
        StatusMessage: protocol.status_message("live", "simulator", SourceState.STALE,
                                               "no feed for 5s", 10),
    }
    for model, message in built.items():
        assert list(message) == list(model.model_fields), model.__name__
        text = protocol.encode(message)
        parsed = protocol.stream_message.validate_json(text)
        assert type(parsed) is model
        assert json.loads(parsed.model_dump_json()) == json.loads(text) == message


def test_the_page_takes_every_close_code_from_the_service_and_hard_codes_none(mock_settings):
    with TestClient(create_app(mock_settings())) as client:
        page = client.get("/").text
        script = client.get("/static/app.js").text
    config = json.loads(re.search(r'<script id="config" type="application/json">(.*?)</script>', page, re.S)[1])
    assert config["close_codes"] == {code.name: code.value for code in CloseCode}
    # What the page compares close events with, and closes with, all come from the config.
    used = set(re.findall(r"\bCLOSE\.([A-Z_]+)", script))
    assert used and used <= set(config["close_codes"]), used
    numbers = {int(n) for n in re.findall(r"(?<![\w.])\d{4}(?![\w.])", script)}
    assert not numbers & {code.value for code in CloseCode}, numbers


def test_the_readmes_close_code_table_is_the_protocols():
    rows = re.findall(r"^\| \*\*(\d+)\*\* \|([^|]*)\|", README.read_text(), re.M)
    assert len(rows) >= 4, rows
    for code, reason in rows:
        member = CloseCode(int(code))   # a documented code the protocol does not have fails here
        shown = re.match(r"`([^`…]*)", reason.strip())
        assert (shown[1].strip() if shown else "") == member.reason, (code, reason, member.reason)

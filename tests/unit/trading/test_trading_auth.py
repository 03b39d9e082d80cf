"""Bybit v5 authentication: known-answer signatures, the recv_window rule, and each error code."""
from __future__ import annotations

import pytest

from simulator.trading import auth

KEYS = {"KEY": "SECRET"}
NOW = 1_700_000_000_000


def test_signatures_match_a_known_answer():
    # printf 1KEY5000a=b | openssl dgst -sha256 -hmac SECRET
    assert auth.rest_signature("SECRET", "1", "KEY", "5000", "a=b") == \
        "d690ea02ef15fa8dfb1980a17c653c069aa8b2b7a528536ca94a67cf996f2104"
    assert auth.ws_signature("SECRET", 1) == auth.sign("SECRET", "GET/realtime1")


def header(stamp: int = NOW, window: int = 5000, key: str = "KEY", secret: str = "SECRET",
           payload: str = "x=1") -> dict[str, str]:
    return {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": str(stamp), "X-BAPI-RECV-WINDOW": str(window),
            "X-BAPI-SIGN": auth.rest_signature(secret, str(stamp), key, str(window), payload)}


def test_rest_passes_inside_the_window_and_fails_with_bybits_codes():
    assert auth.check_rest(KEYS, header(), "x=1", NOW) is None
    assert auth.check_rest(KEYS, header(NOW - 5000), "x=1", NOW) is None      # the window's first ms
    assert auth.check_rest(KEYS, header(NOW + 999), "x=1", NOW) is None       # under a second ahead
    assert auth.check_rest(KEYS, header(NOW - 5001), "x=1", NOW)[0] == 10002
    assert auth.check_rest(KEYS, header(NOW + 1000), "x=1", NOW)[0] == 10002
    assert auth.check_rest(KEYS, header(key="OTHER"), "x=1", NOW)[0] == 10003
    code, msg = auth.check_rest(KEYS, header(secret="WRONG"), "x=1", NOW)
    assert code == 10004 and msg.startswith("error sign!")
    assert auth.check_rest(KEYS, header(), "x=2", NOW)[0] == 10004            # the payload is signed


def test_websocket_auth_takes_a_fresh_signature_only():
    expires = NOW + 1000
    assert auth.check_ws(KEYS, ["KEY", expires, auth.ws_signature("SECRET", expires)], NOW) is None
    assert auth.check_ws(KEYS, ["KEY", NOW, auth.ws_signature("SECRET", NOW)], NOW) == (10001, "Params Error")
    assert auth.check_ws(KEYS, ["KEY", expires, auth.ws_signature("WRONG", expires)], NOW)[0] == 10004
    assert auth.check_ws(KEYS, ["NOPE", expires, "x"], NOW)[0] == 10003
    assert auth.check_ws(KEYS, "KEY", NOW)[0] == 10001


def test_the_secret_comes_from_a_file_and_never_shows_in_an_error(tmp_path, monkeypatch):
    from simulator.config import ConfigError, load_settings

    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    assert load_settings(api_key="KEY", api_secret_file=str(secret)).api_keys == {"KEY": "s3cret-value"}
    monkeypatch.setenv("SIM_API_SECRET", "s3cret-value")
    monkeypatch.setenv("SIM_WALLET_USDT", "-1")
    try:
        load_settings(api_key="KEY")
    except ConfigError as exc:
        assert "SIM_WALLET_USDT='-1'" in str(exc) and "s3cret" not in str(exc)
    else:
        raise AssertionError("a negative wallet was accepted")
    assert load_settings(api_key="KEY", wallet_usdt=5).api_keys == {"KEY": "s3cret-value"}
    assert "s3cret" not in repr(load_settings(api_key="KEY", wallet_usdt=5))


def test_an_empty_secret_file_or_two_secrets_are_refused_without_showing_either(tmp_path, monkeypatch):
    from simulator.config import ConfigError, load_settings

    empty, secret = tmp_path / "empty", tmp_path / "secret"
    empty.write_text("\n")
    secret.write_text("s3cret-value\n")
    with pytest.raises(ConfigError, match="SIM_API_SECRET_FILE is empty"):
        load_settings(api_key="KEY", api_secret_file=str(empty))
    monkeypatch.setenv("SIM_API_SECRET", "other-s3cret")
    with pytest.raises(ConfigError, match="not both") as refused:
        load_settings(api_key="KEY", api_secret_file=str(secret))
    assert "s3cret" not in str(refused.value)

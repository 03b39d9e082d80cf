"""The API's edges: what its OpenAPI schema promises, what /static serves, and what an error echoes back."""
from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from starlette.testclient import TestClient

from service.app import create_app

V1_OPERATIONS = (("/v1/status", False), ("/v1/book", True), ("/v1/trades", True),   # (path, takes `symbol`)
                 ("/v1/trading", False))


def _error_body_schema(schema: dict, operation: dict, status: str) -> dict:
    """The documented JSON body of one error response, its $ref resolved."""
    assert status in operation["responses"], f"{status} is not documented"
    response = operation["responses"][status]
    assert response.get("description"), f"{status} has no description"
    body = response["content"]["application/json"]["schema"]
    if "$ref" not in body:
        return body
    assert body["$ref"].startswith("#/components/schemas/"), body["$ref"]
    return schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]


def _matches(body: dict, documented: dict) -> bool:
    """A body has exactly the documented properties, each a string (the shape of FastAPI's `detail`)."""
    return (set(body) == set(documented["properties"]) == set(documented.get("required", ()))
            and all(documented["properties"][k].get("type") == "string" and isinstance(v, str)
                    for k, v in body.items()))


# -- 10: the schema documents 401 and bearer auth exactly when a token is set, and 404 for unknown symbols
def test_with_a_token_every_v1_operation_documents_401_and_the_bearer_scheme(mock_settings):
    with TestClient(create_app(mock_settings(api_token="s3cret"))) as client:
        schema = client.get("/openapi.json").json()
        schemes = schema["components"]["securitySchemes"]
        assert [(s["type"], s["scheme"]) for s in schemes.values()] == [("http", "bearer")]
        (scheme_name,) = schemes
        for path, _ in V1_OPERATIONS:
            operation = schema["paths"][path]["get"]
            assert operation.get("security") == [{scheme_name: []}], path
            documented = _error_body_schema(schema, operation, "401")
            refused = client.get(path)
            assert refused.status_code == 401
            assert _matches(refused.json(), documented), (path, refused.json(), documented)
            assert "WWW-Authenticate" in operation["responses"]["401"].get("headers", {}), path
        for path in ("/healthz", "/readyz", "/metrics"):   # open to everyone: no auth, no 401
            operation = schema["paths"][path]["get"]
            assert "security" not in operation and "401" not in operation["responses"], path


def test_without_a_token_the_schema_declares_no_auth_and_no_401(mock_settings):
    with TestClient(create_app(mock_settings())) as client:
        schema = client.get("/openapi.json").json()
        assert "securitySchemes" not in schema.get("components", {})
        assert "security" not in schema
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                assert "security" not in operation, (method, path)
                assert "401" not in operation["responses"], (method, path)
        assert client.get("/v1/status").status_code == 200   # and indeed none is asked for


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_routes_taking_a_symbol_document_404_and_keep_422(mock_settings, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with TestClient(create_app(mock_settings(api_token=token))) as client:
        schema = client.get("/openapi.json").json()
        for path, takes_symbol in V1_OPERATIONS:
            operation = schema["paths"][path]["get"]
            if not takes_symbol:
                assert "404" not in operation["responses"], path
                continue
            assert "422" in operation["responses"], path   # FastAPI's own, untouched
            documented = _error_body_schema(schema, operation, "404")
            unknown = client.get(path, params={"symbol": "DOGEUSDT"}, headers=headers)
            assert unknown.status_code == 404
            assert _matches(unknown.json(), documented), (path, unknown.json(), documented)


# -- 11: the page's template is rendered at "/", never served raw from /static
def test_static_never_serves_the_raw_page_template(mock_settings):
    with TestClient(create_app(mock_settings())) as client:
        for path in ("/static/index.html", "/static//index.html", "/static/./index.html", "/static/"):
            answer = client.get(path)
            assert "{{" not in answer.text, (path, answer.status_code, answer.text[:200])
        page = client.get("/")
        assert page.status_code == 200 and "{{" not in page.text
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        assert sorted(assets) == ["/static/app.js", "/static/style.css"]
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200 and served.content, asset
    # At the root: nothing the static mount serves is a template.
    for item in resources.files("service").joinpath("static").iterdir():
        assert b"{{" not in item.read_bytes(), item.name


# -- 12: an unknown symbol is echoed as a short, printable prefix, never whole
def _raw_get(client: TestClient, path: str, query: bytes) -> tuple[int, bytes]:
    """A GET straight into the app's ASGI callable, on the client's loop: the test client refuses a
    query over 64 KB, and a server in front of the app (or another HTTP parser) need not."""
    async def call() -> tuple[int, bytes]:
        sent = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
                 "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000),
                 "server": ("testserver", 80)}
        await client.app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert client.portal is not None
    return client.portal.call(call)


@pytest.mark.parametrize("path", ["/v1/book", "/v1/trades"])
def test_a_huge_unknown_symbol_is_echoed_only_as_a_short_prefix(mock_settings, path):
    with TestClient(create_app(mock_settings())) as client:
        status, body = _raw_get(client, path, b"symbol=" + b"A" * 100_000)
        assert status == 404
        assert len(body) < 300, len(body)
        detail = json.loads(body)["detail"]
        assert "A" * 32 in detail and "A" * 33 not in detail
        assert "…" in detail and "this service serves BTCUSDT" in detail


def test_an_unknown_symbol_with_control_characters_is_echoed_printable(mock_settings):
    with TestClient(create_app(mock_settings())) as client:
        answer = client.get("/v1/book", params={"symbol": "\x1b[31mDOGE\x00\u202eUSDT\r\nX-Evil: 1"})
        assert answer.status_code == 404
        detail = answer.json()["detail"]
        assert detail.startswith("unknown symbol '?[31MDOGE??USDT") and "this service serves BTCUSDT" in detail
        echoed = detail.split(";")[0]
        assert all(" " <= c <= "~" or c == "…" for c in echoed), ascii(echoed)
        assert "\\x" not in echoed and "\\u" not in echoed   # replaced, not spelled out as escapes


def test_a_huge_invalid_number_is_echoed_only_as_a_short_prefix_in_the_422(mock_settings):
    with TestClient(create_app(mock_settings())) as client:
        response = client.get("/v1/book", params={"depth": "9" * 50_000})
    assert response.status_code == 422
    assert len(response.content) < 1000, f"the 422 echoed {len(response.content)} bytes"
    assert response.json()["detail"][0]["loc"] == ["query", "depth"]

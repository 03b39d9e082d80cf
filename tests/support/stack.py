"""compose.yaml's profiles for one test: the product's compose runner (cli.compose.Project) under a private
project name, on 127.0.0.1 ports Docker picks, with the test's settings instead of the user's .env."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable

from cli.compose import Project


def get(url: str, timeout: float = 5.0) -> tuple[int, dict | str]:
    """(status, parsed JSON or text) of a GET; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers.get_content_type()
    text = body.decode()
    return status, json.loads(text) if kind == "application/json" else text


class Stack(Project):
    """`with Stack("mock", MOCK_SEED="7") as stack:` starts the profiles healthy (or, with wait=False,
    started) and always removes them; then stack.url, stack.ws_url and stack.port reach the API."""

    def __init__(self, profile: str | list[str], *, wait: bool = True, only: Iterable[str] = (),
                 **settings: str) -> None:
        # Port 0: Docker picks a free port and compose reports it; no probe that another process could race.
        super().__init__([profile] if isinstance(profile, str) else profile,
                         name=f"hftlive-test-{uuid.uuid4().hex[:8]}", wait=wait, only=only,
                         settings={"HFTLIVE_PORT": "0", "SIM_CONTROL_PORT": "0", **settings})

    def start(self) -> None:
        super().start()
        address = self.published()
        self.port = int(address.rsplit(":", 1)[1])
        self.url, self.ws_url = f"http://{address}", f"ws://{address}"

    def get(self, path: str) -> tuple[int, dict | str]:
        return get(self.url + path)

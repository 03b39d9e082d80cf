"""Download one sdist from the Python package index pip uses, and verify its sha256.

Usage: fetch_sdist.py NAME VERSION SHA256 DEST_DIR. Exits 1 with one clear line when the
file is missing or its hash differs from the pinned one (docker/versions.env).
"""
from __future__ import annotations

import hashlib
import json
import os
import ssl
import sys
import urllib.parse
import urllib.request
from pathlib import Path


def index_url() -> str:
    configured = os.environ.get("PIP_INDEX_URL")
    if configured:
        return configured.rstrip("/")
    from pip._internal.models.index import PyPI  # pip's own default index

    return PyPI.simple_url.rstrip("/")


def fetch(url: str, accept: str | None = None) -> bytes:
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, context=context, timeout=120) as response:
        return response.read()


def main(name: str, version: str, pinned: str, dest: str) -> int:
    filename = f"{name}-{version}.tar.gz"
    project = f"{index_url()}/{name}/"
    listing = json.loads(fetch(project, "application/vnd.pypi.simple.v1+json"))
    files = {f["filename"]: f for f in listing.get("files", [])}
    if filename not in files:
        print(f"fetch_sdist: {filename} is not on the index ({project})", file=sys.stderr)
        return 1
    data = fetch(urllib.parse.urljoin(project, files[filename]["url"]))
    digest = hashlib.sha256(data).hexdigest()
    if digest != pinned:
        print(f"fetch_sdist: sha256 mismatch for {filename}: downloaded {digest}, "
              f"pinned {pinned} in docker/versions.env. Refusing to build from an unverified "
              "source; if the new hash is expected, update the pin.", file=sys.stderr)
        return 1
    Path(dest).mkdir(parents=True, exist_ok=True)
    (Path(dest) / filename).write_bytes(data)
    print(f"fetch_sdist: {filename} sha256 {digest} verified ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(*sys.argv[1:]))
    except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts, a bad index page
        print(f"fetch_sdist: cannot download from the package index: {error}. Check the network, "
              "PIP_INDEX_URL, and that the CA bundle (--ca-bundle) trusts the index.", file=sys.stderr)
        sys.exit(1)

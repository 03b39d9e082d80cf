"""The CycloneDX 1.5 pieces the air-gap bundle and a release both write, and the file hash both list."""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from urllib.parse import quote


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def purl(name: str, version: str) -> str:
    """A PyPI package URL; a local version label's `+` is percent-encoded, as purls require."""
    return f"pkg:pypi/{name.lower().replace('_', '-')}@{quote(version, safe='')}"


def wheel(entry: dict, bom_ref: str, prop: str, value: str) -> dict:
    """One wheel of a wheelhouse manifest ({file, sha256}) as a library component."""
    name, version = entry["file"].split("-")[:2]
    return {"type": "library", "bom-ref": bom_ref, "name": name, "version": version,
            "purl": purl(name, version), "hashes": [{"alg": "SHA-256", "content": entry["sha256"]}],
            "properties": [{"name": prop, "value": value}]}


def document(version: str, built_at: str, components: list[dict]) -> dict:
    return {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
            "serialNumber": f"urn:uuid:{uuid.uuid4()}",
            "metadata": {"timestamp": built_at,
                         "component": {"type": "application", "bom-ref": "hftlive", "name": "hftlive",
                                       "version": version}},
            "components": components}

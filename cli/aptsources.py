"""Where apt gets Debian packages on this host, read from its sources (never hard-coded)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SOURCES_DIR = Path("/etc/apt/sources.list.d")
SOURCES_LIST = Path("/etc/apt/sources.list")
DEBIAN_SUITES = {"bookworm", "trixie", "forky", "sid", "unstable", "testing", "stable"}


@dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


class NoDebianMirror(RuntimeError):
    pass


def _deb822(text: str) -> list[Source]:
    sources = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(Source(uri.rstrip("/"), tuple(fields.get("suites", "").split()),
                                  tuple(fields.get("components", "main").split())))
    return sources


def _one_line(text: str) -> list[Source]:
    sources = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        if words[1].startswith("["):  # options such as [signed-by=...]
            while words and not words[1].endswith("]"):
                words.pop(1)
            words.pop(1)
        sources.append(Source(words[1].rstrip("/"), (words[2],), tuple(words[3:]) or ("main",)))
    return sources


def host_sources() -> list[Source]:
    found: list[Source] = []
    if SOURCES_LIST.exists():
        found += _one_line(SOURCES_LIST.read_text())
    if SOURCES_DIR.is_dir():
        for path in sorted(SOURCES_DIR.iterdir()):
            if path.suffix == ".sources":
                found += _deb822(path.read_text())
            elif path.suffix == ".list":
                found += _one_line(path.read_text())
    return found


def debian_mirrors(sources: list[Source] | None = None) -> tuple[str, str | None]:
    """(archive URI, security URI or None) of the Debian mirror apt is configured with.

    HFTLIVE_DEBIAN_MIRROR (and HFTLIVE_DEBIAN_SECURITY) name one instead, for hosts whose apt
    has none: ci.yml's offline-bases run on an Ubuntu runner."""
    if os.environ.get("HFTLIVE_DEBIAN_MIRROR"):
        return os.environ["HFTLIVE_DEBIAN_MIRROR"], os.environ.get("HFTLIVE_DEBIAN_SECURITY") or None
    sources = host_sources() if sources is None else sources
    archive = security = None
    for source in sources:
        for suite in source.suites:
            base = suite.split("-")[0].split("/")[0]
            if base not in DEBIAN_SUITES:
                continue
            if suite.endswith("-security"):
                security = security or source.uri
            elif archive is None:
                archive = source.uri
    if archive is None:
        raise NoDebianMirror(
            "apt has no Debian archive configured (looked in /etc/apt/sources.list and "
            "/etc/apt/sources.list.d); add a Debian mirror there, or use a host that can pull "
            "the public base images")
    return archive, security


def sources_for(suite: str, archive: str, security: str | None) -> str:
    """A deb822 sources file for `suite`, its -updates and -security, on the given mirrors."""
    stanzas = [f"Types: deb\nURIs: {archive}\nSuites: {suite} {suite}-updates\nComponents: main\n"
               "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"]
    if security:
        stanzas.append(f"Types: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n"
                       "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    return "\n".join(stanzas)

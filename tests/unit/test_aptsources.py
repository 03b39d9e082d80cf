"""The Debian mirror is read from apt's configuration, in either of its formats."""
import pytest

from cli import aptsources

DEB822 = """Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""

ONE_LINE = """# deb http://old.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] https://one.example/debian trixie main contrib
deb https://apt.vendor.example/ nodistro main
"""


def test_deb822_gives_archive_and_security():
    sources = aptsources._deb822(DEB822)
    assert aptsources.debian_mirrors(sources) == ("http://mirror.example/debian",
                                                  "http://mirror.example/debian-security")


def test_one_line_format_skips_options_and_other_vendors():
    sources = aptsources._one_line(ONE_LINE)
    assert [s.uri for s in sources] == ["https://one.example/debian", "https://apt.vendor.example"]
    assert aptsources.debian_mirrors(sources) == ("https://one.example/debian", None)


def test_no_debian_source_is_a_clear_error():
    with pytest.raises(aptsources.NoDebianMirror, match="no Debian archive"):
        aptsources.debian_mirrors(aptsources._one_line(ONE_LINE.splitlines()[2]))


def test_sources_for_another_suite_reuses_the_mirrors():
    text = aptsources.sources_for("trixie", "http://m/debian", "http://m/debian-security")
    assert "URIs: http://m/debian\nSuites: trixie trixie-updates" in text
    assert "URIs: http://m/debian-security\nSuites: trixie-security" in text


def test_a_named_mirror_serves_a_host_whose_apt_has_no_debian(monkeypatch):
    """An Ubuntu runner (ci.yml's offline-bases) names the mirror; without it, the clear error."""
    ubuntu_only = aptsources._one_line(ONE_LINE.splitlines()[2])
    monkeypatch.setenv("HFTLIVE_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert aptsources.debian_mirrors(ubuntu_only) == ("http://mirror.example/debian", None)
    monkeypatch.setenv("HFTLIVE_DEBIAN_SECURITY", "http://mirror.example/debian-security")
    assert aptsources.debian_mirrors(ubuntu_only)[1] == "http://mirror.example/debian-security"
    monkeypatch.delenv("HFTLIVE_DEBIAN_MIRROR")
    with pytest.raises(aptsources.NoDebianMirror):
        aptsources.debian_mirrors(ubuntu_only)

"""The offline base images are slimmed like Debian's -slim images, without touching anything outside their root."""
from cli import bases


def test_slim_drops_docs_and_translations_keeps_copyright_and_never_follows_links(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "host"
    (outside / "doc").mkdir(parents=True)
    (outside / "doc" / "README").write_text("the host's own file")
    for path in ("usr/share/doc/python3/changelog.gz", "usr/share/doc/python3/copyright",
                 "usr/share/locale/de/LC_MESSAGES/apt.mo", "usr/share/man/man1/python3.1.gz",
                 "usr/lib/python3.11/os.py"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x")
    (root / "usr/share/doc/linked").symlink_to(outside / "doc")        # an absolute link out of the root
    (root / "usr/share/man/man8").symlink_to(outside / "doc")

    bases.slim(root)

    assert (root / "usr/share/doc/python3/copyright").is_file()
    assert not (root / "usr/share/doc/python3/changelog.gz").exists()
    assert not any((root / "usr/share/locale").iterdir()) and not any((root / "usr/share/man").iterdir())
    assert (root / "usr/lib/python3.11/os.py").is_file()
    assert (outside / "doc" / "README").read_text() == "the host's own file"
    assert "path-exclude /usr/share/locale/*" in (root / "etc/dpkg/dpkg.cfg.d/hftlive-slim").read_text()


def test_offline_bases_setting_never_pulls_and_bootstraps_instead(monkeypatch):
    """ci.yml's `offline-bases` input: a runner that could pull still takes the Debian bootstrap."""
    asked = []
    monkeypatch.setattr(bases, "_present", lambda client, ref: asked.append(("present", ref)) or False)
    monkeypatch.setattr(bases, "_pull", lambda client, ref, step: asked.append(("pull", ref)) or True)
    monkeypatch.setattr(bases, "bootstrap", lambda base, client, step: asked.append(("bootstrap", base.local)))
    base = bases.BASES["python3.11-bookworm"]

    monkeypatch.setenv("HFTLIVE_OFFLINE_BASES", "1")
    assert bases.ensure("python3.11-bookworm", client=object()) == base.local
    assert ("pull", base.public) not in asked and ("bootstrap", base.local) in asked

    asked.clear()
    monkeypatch.delenv("HFTLIVE_OFFLINE_BASES")
    assert bases.ensure("python3.11-bookworm", client=object()) == base.public
    assert ("pull", base.public) in asked

"""Our patches are small, ordered, and each says what it fixes and why."""
import re

from tests.support import ROOT


PATCHES = sorted((ROOT / "docker" / "patches").glob("*.patch"))


def test_patches_exist_in_order():
    names = [p.name for p in PATCHES]
    assert len(names) >= 2
    assert all(re.fullmatch(r"\d{4}-[a-z0-9-]+\.patch", n) for n in names)
    assert [n[:4] for n in names] == [f"{i:04d}" for i in range(1, len(names) + 1)]


def test_each_patch_has_a_header_and_stays_small():
    for patch in PATCHES:
        text = patch.read_text()
        header, _, diff = text.partition("\n--- a/")
        assert "What it fixes" in header, patch.name
        assert header.startswith("hftlive patch " + patch.name[:4]), patch.name
        changed = [l for l in diff.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]
        assert 0 < len(changed) <= 60, f"{patch.name} changes {len(changed)} lines"


def test_the_two_upstream_bugs_are_covered():
    text = "".join(p.read_text() for p in PATCHES)
    assert "pub extern \"C\" fn hashmaplive_modify(" in text
    assert "pub extern \"C\" fn roiveclive_modify(" in text
    assert "+    def HashMapMarketDepthLiveBot(" in text

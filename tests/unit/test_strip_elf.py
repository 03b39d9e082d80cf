"""strip_elf.py (the runtime images' offline `strip`): debug info gone, the library still loads and works."""
import ctypes
import shutil
import subprocess
import sys

import pytest

from tests.support import ROOT


SOURCE = "int triple(int x) { return 3 * x; }\nstatic int unused_helper(void) { return 7; }\n"


@pytest.fixture
def library(tmp_path):
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.fail("this test needs a C compiler (gcc) on the host")
    (tmp_path / "lib.c").write_text(SOURCE)
    path = tmp_path / "libtriple.so"
    subprocess.run([compiler, "-g", "-O1", "-shared", "-fPIC", "-o", str(path), str(tmp_path / "lib.c")], check=True)
    return path


def sections(path) -> list[str]:
    out = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split("]", 1)[1].split()[0] for line in out.splitlines() if line.strip().startswith("[") and "]" in line
            and line.split("]", 1)[1].split()]


def test_strips_debug_info_and_symtab_and_the_library_still_works(library):
    before = library.stat().st_size
    assert any(name.startswith(".debug_") for name in sections(library))
    done = subprocess.run([sys.executable, str(ROOT / "docker/runtime/strip_elf.py"), str(library)],
                          capture_output=True, text=True, check=True)
    assert "MB ->" in done.stdout
    after = sections(library)
    assert not any(name.startswith(".debug_") or name in (".symtab", ".strtab") for name in after)
    assert ".dynsym" in after and ".text" in after
    assert library.stat().st_size < before
    assert ctypes.CDLL(str(library)).triple(14) == 42
    # Running it again changes nothing.
    again = subprocess.run([sys.executable, str(ROOT / "docker/runtime/strip_elf.py"), str(library)],
                           capture_output=True, text=True, check=True)
    assert "nothing to strip" in again.stdout


def test_a_file_that_is_not_elf_is_left_alone(tmp_path):
    other = tmp_path / "notes.so"
    other.write_text("not a library")
    done = subprocess.run([sys.executable, str(ROOT / "docker/runtime/strip_elf.py"), str(other)],
                          capture_output=True, text=True, check=True)
    assert "left as is" in done.stdout and other.read_text() == "not a library"

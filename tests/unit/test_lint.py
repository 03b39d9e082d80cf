"""shellcheck on every shell script and hadolint on every Dockerfile the project tracks: clean, or
the test prints what they found. Exceptions are marked where they are made, with the reason."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT


def tracked() -> list[Path]:
    names = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / name for name in names if (ROOT / name).is_file()]


SHEBANG = re.compile(rb"^#!\s*/(usr/)?bin/(env\s+)?(ba)?sh\b")


def shell_scripts() -> list[Path]:
    found = []
    for path in tracked():
        with path.open("rb") as f:
            if SHEBANG.match(f.readline()):
                found.append(path)
    return found


def lint(name: str, *args: str | Path) -> str:
    """Run a linter of the test venv: it passes, or the test shows what it found; returns that."""
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed in the test venv (service/requirements-test.txt)")
    done = subprocess.run([path, *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-1000:]
    return done.stdout + done.stderr


def test_the_scripts_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
    assert {"hftlive", ".ci/run", "docker/bundle/install.sh", "docker/build/prepare-source"} <= names, names


def test_shellcheck_is_clean_on_every_shell_script():
    lint("shellcheck", "--color=never", *shell_scripts())


def test_hadolint_is_clean_on_every_dockerfile():
    dockerfiles = [p for p in tracked() if p.name.startswith("Dockerfile")]
    assert len(dockerfiles) >= 2
    lint("hadolint", "--no-color", *dockerfiles)


def workflows() -> list[Path]:
    found = [p for p in tracked() if p.parent == ROOT / ".github" / "workflows"]
    assert {p.name for p in found} >= {"ci.yml", "release.yml"}
    return found


def test_zizmor_finds_nothing_in_the_workflows_even_as_a_pedantic_auditor():
    # offline: the audits that ask GitHub (known-vulnerable action versions, impostor commits) cannot run here
    said = lint("zizmor", "--offline", "--persona", "pedantic", "--no-progress", *workflows())
    assert "No findings to report" in said


def test_the_workflows_match_githubs_workflow_schema():
    # actionlint cannot be installed here (its PyPI package downloads the binary from GitHub at
    # install time); check-jsonschema carries SchemaStore's github-workflow schema, and the
    # next test does actionlint's other job, shellcheck on every `run:` script.
    lint("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows())


def test_shellcheck_is_clean_on_every_run_script_of_the_workflows(tmp_path):
    import yaml
    scripts = []
    for path in workflows():
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for number, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    # GitHub's default shell is bash; expressions become a plain word, as they are
                    # replaced before the shell sees the script.
                    body = re.sub(r"\$\{\{.*?\}\}", "EXPRESSION", step["run"])
                    script = tmp_path / f"{path.stem}-{job_name}-{number}.sh"
                    script.write_text("#!/bin/bash\nset -e\n" + body)
                    scripts.append(script)
    assert len(scripts) >= 8
    lint("shellcheck", "--color=never", *scripts)

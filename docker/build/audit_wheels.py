"""Check every wheel with `auditwheel show`; exit 1 unless each fits POLICY or an older one.

Usage: audit_wheels.py WHEEL_DIR POLICY (e.g. manylinux_2_28). Prints one line per wheel.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

# The build's own machine: x86_64, or aarch64 on an arm runner.
TAG = re.compile(r'"(manylinux_(\d+)_(\d+)_%s)"' % re.escape(os.uname().machine))


def glibc(policy: str) -> tuple[int, int]:
    major, minor = re.fullmatch(r"manylinux_(\d+)_(\d+)", policy).groups()
    return int(major), int(minor)


def main(directory: str, policy: str) -> int:
    limit = glibc(policy)
    wheels = sorted(Path(directory).glob("hftbacktest-*.whl"))
    if not wheels:
        print(f"audit: no hftbacktest wheels in {directory}", file=sys.stderr)
        return 1
    failed = False
    for wheel in wheels:
        shown = subprocess.run(["auditwheel", "show", str(wheel)], capture_output=True, text=True)
        text = " ".join((shown.stdout + shown.stderr).split())
        match = TAG.search(text)
        if shown.returncode != 0 or match is None:
            print(f"audit: FAIL {wheel.name}: auditwheel could not place it: {text[:400]}")
            failed = True
            continue
        found = (int(match.group(2)), int(match.group(3)))
        verdict = "ok" if found <= limit else "FAIL"
        failed |= found > limit
        print(f"audit: {verdict} {wheel.name}: auditwheel says {match.group(1)} (limit {policy})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

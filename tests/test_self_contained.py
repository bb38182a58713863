"""Nothing in the repository points outside it: the contracts it cites are its own docs.

The public contract is README.md and docs/ (spec.md, api.md, checkpoint-format.md,
reliability.md, architecture.md); a reference to a design document or a conventions file
that lives beside the repository, or to a path on the machine it was written on, breaks on
a fresh clone.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\bDESIGN\b|\.\./shared|\bCONVENTIONS\b|/work/")
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                         capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name and name != SELF]


def test_no_tracked_file_points_outside_the_repository() -> None:
    found = []
    for name in tracked_files():
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: images, golden .npz
        found += [f"{name}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                  if OUTSIDE.search(line)]
    assert found == [], "replace these by pointers to README or docs/:\n" + "\n".join(found)


def test_the_check_finds_an_outside_reference() -> None:
    assert OUTSIDE.search("as in DESIGN" + " §3") and OUTSIDE.search("see ../" + "shared/x")
    assert not OUTSIDE.search("see docs/spec.md and DESIGNER's notes")

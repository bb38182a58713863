"""Sub-commands of `weightsmith` (see service/cli/__init__.py)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's sub-commands; each sets `handler` to a function(args) -> exit code."""

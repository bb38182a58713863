"""The `weightsmith` command line (README: the tour).

Each module registers its own sub-commands, so the server commands (serve, api, worker, beat,
db, keys) and the client commands (submit, watch, jobs, ...) grow independently.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config.settings import SettingError
from service.cli import batch_commands, client_commands, server_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weightsmith",
        description="Training-as-a-service for NumPy neural networks.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server_commands.register(commands)
    client_commands.register(commands)
    batch_commands.register(commands, client_commands.common_parser())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the chosen command; its return value is the exit code."""
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except SettingError as exc:  # a bad WEIGHTSMITH_* variable: its message, not a traceback
        print(f"weightsmith: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

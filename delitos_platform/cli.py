"""``delitos``: the project's own commands (the emulator, the synthetic snapshot, the demo)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

# Each sub-command registers itself: name -> (add its arguments, run it and return an exit code).
Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _commands() -> dict[str, tuple[str, Command]]:
    from delitos_platform import demo, prepare
    from delitos_platform.emulator import cli as emulator_cli

    return {
        "demo": ("run the whole platform offline on the embedded default", (demo.add_arguments, demo.run)),
        "emulator": ("serve a snapshot through a SODA-compatible HTTP API", emulator_cli.EMULATOR),
        "synthesize": ("write a national-scale synthetic snapshot", emulator_cli.SYNTHESIZE),
        "prepare": ("parse the dbt project when it changed (before the definitions load)", prepare.PREPARE),
    }


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr (``--help`` still shows the usage), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run one sub-command and return its exit code."""
    parser = OneLineParser(prog="delitos", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    commands = _commands()
    for name, (help_text, (add_arguments, _)) in commands.items():
        add_arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    _, run = commands[args.command][1]
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as error:
        print(f"delitos {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

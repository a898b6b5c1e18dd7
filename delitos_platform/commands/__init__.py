"""``delitos``: the project's own commands (the demo, the UI, backfills, queries, the emulator, snapshots)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NoReturn

from delitos_platform.datasets import DatasetConfigError

# Each sub-command registers itself: name -> (add its arguments, run it and return an exit code).
Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
EXAMPLES = """examples:
  delitos demo                                  # the whole platform, offline, into .dagster_home/ and data/
  delitos dev                                   # the UI on the demo's instance, data and emulator
  delitos backfill --from 2024-01 --to 2024-06  # one run, recorded in the same instance
  delitos sql "select * from gold.resumen_general"
"""


def _commands() -> dict[str, tuple[str, Command]]:
    from delitos_platform.commands import backfill, demo, dev, prepare, sql
    from delitos_platform.emulator import cli as emulator_cli

    return {
        "demo": ("run the whole platform offline on the embedded default", (demo.add_arguments, demo.run)),
        "dev": ("open the Dagster UI on the demo's instance, data and source", (dev.add_arguments, dev.run)),
        "backfill": ("run the main job over a range of months, in one run", (backfill.add_arguments, backfill.run)),
        "sql": ("query the environment's warehouse (gold) and print a table", (sql.add_arguments, sql.run)),
        "emulator": ("serve a snapshot through a SODA-compatible HTTP API", emulator_cli.EMULATOR),
        "synthesize": ("write a national-scale synthetic snapshot", emulator_cli.SYNTHESIZE),
        "prepare": ("parse the dbt project when it changed (before the definitions load)", prepare.PREPARE),
    }


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help (a required one says so); the examples (epilog) as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required and action.option_strings:
            return f"{action.help} (required)"
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr (``--help`` still shows the usage), exit code 2."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> tuple[OneLineParser, dict[str, tuple[str, Command]]]:
    """The ``delitos`` parser with every sub-command, and the sub-commands."""
    parser = OneLineParser(prog="delitos", description=__doc__.replace("``", ""), epilog=EXAMPLES)
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    commands = _commands()
    for name, (help_text, (add_arguments, _)) in commands.items():
        add_arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run one sub-command and return its exit code."""
    try:
        parser, commands = build_parser()  # reads the dataset entries: a bad one is refused before anything runs
    except DatasetConfigError as error:
        from delitos_platform.commands.console import complain

        complain(f"delitos: {error}")
        return 2
    args = parser.parse_args(argv)
    _, run = commands[args.command][1]
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as error:
        if getattr(args, "verbose", False):
            raise
        from delitos_platform.commands.console import complain

        complain(f"delitos {args.command}: {error}")
        return 2

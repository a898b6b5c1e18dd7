"""``delitos prepare``: the dbt project parsed for Dagster, when it changed, before anything loads the definitions.

A module of its own, light to import: ``delitos`` builds its sub-commands before it knows which one runs, and
dagster-dbt (imported by ``transform``) takes more than a second to import.
"""

from __future__ import annotations

import argparse
import time

EXAMPLES = """examples:
  delitos prepare            # after changing a model: the next run and the UI load the new manifest
  delitos prepare --force    # parse again even though no file of the project changed (e.g. another dbt)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``delitos prepare``'s one option."""
    parser.add_argument(
        "--force", action="store_true", help="parse the project even when its manifest is newer than every file"
    )
    parser.epilog = EXAMPLES


def run(args: argparse.Namespace) -> int:
    """Parse the dbt project when its manifest is missing or stale, and say which it was; 0."""
    from delitos_platform.transform import delitos_dbt_project, prepare_dbt

    started = time.monotonic()
    manifest = delitos_dbt_project.manifest_path
    if prepare_dbt(force=args.force):
        print(f"dbt parsed in {time.monotonic() - started:.1f} s: {manifest}")
    else:
        print(f"dbt already prepared: {manifest} is newer than every file of the project")
    return 0


PREPARE = (add_arguments, run)

"""``delitos backfill``: the main job over a range of months, in ONE run, recorded in the demo's instance.

The same instance, data and source as ``delitos demo`` (our emulator unless ``--source`` names the API), the same
line per step, so that the UI (``delitos dev``) shows the run beside the demo's.
"""

from __future__ import annotations

import argparse
import re

from delitos_platform.commands import embedded as platform
from delitos_platform.partitions import PartitionRangeError, Window, calendar, parse_partition_key

EXAMPLES = """examples:
  delitos backfill --from 2024-01 --to 2024-06
  delitos backfill --from 2019-03 --to 2019-03 --verbose
  delitos backfill --from 2024-03 --to 2024-03 --accept-drop   # publish a drop the volume guard held
  delitos backfill --from 2024-01 --to 2024-06 --source real --data-dir national/   # the real API, its own data
"""


def month(text: str) -> str:
    """A month on the command line, ``YYYY-MM``, as its partition key ``YYYY-MM-01``."""
    if not re.fullmatch(r"\d{4}-\d{2}", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2024-01")
    key = f"{text.strip()}-01"
    try:
        parse_partition_key(key)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2024-01") from None
    return key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The backfill's options."""
    parser.add_argument("--from", dest="first", type=month, required=True, help="the first month, YYYY-MM")
    parser.add_argument("--to", dest="last", type=month, required=True, help="the last month (included), YYYY-MM")
    parser.add_argument(
        "--accept-drop",
        action="store_true",
        help=(
            "publish months even when they fall sharply against what is published (the volume guard holds them "
            "otherwise): only when the source really lost those rows; recorded on the run and its materializations"
        ),
    )
    platform.add_source_arguments(parser)
    platform.add_instance_arguments(parser)
    platform.add_verbose_argument(parser)
    parser.epilog = EXAMPLES


def check_range(first: str, last: str) -> None:
    """One sentence naming the valid months when ``first`` → ``last`` is reversed or outside the calendar."""
    start, end, valid = parse_partition_key(first), Window.for_month(last).end, calendar()
    if start >= end or start < valid.start or end > valid.end:
        raise PartitionRangeError.of(start, end, valid)


def run(args: argparse.Namespace) -> int:
    """Run the backfill; 0 when every step succeeded, 1 when a step failed or another run holds the warehouse."""
    from delitos_platform.commands.console import say
    from delitos_platform.defs.volume_guard import ACCEPT_DROP_TAG

    embedded = platform.check_embedded("delitos backfill", args)
    check_range(args.first, args.last)
    url = platform.source_url(args)
    started = platform.started_now()
    with platform.serving(args.snapshot, url) as served:
        platform.check_source(embedded, served)
        tags = {ACCEPT_DROP_TAG: "true"} if args.accept_drop else {}
        result = platform.run_in_warehouse(
            "delitos backfill", embedded, served, first=args.first, last=args.last, verbose=args.verbose, tags=tags
        )
        if result is None:
            return 1
        lines = (platform.success_lines if result.success else platform.failure_lines)(result, embedded, started)
        say("\n".join(["", *lines]))
    return 0 if result.success else 1

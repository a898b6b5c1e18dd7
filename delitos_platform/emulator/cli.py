"""The ``delitos emulator`` and ``delitos synthesize`` sub-commands."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from delitos_platform.contract import DATASET_ID
from delitos_platform.datasets import configured, dataset_entry
from delitos_platform.emulator.faults import parse_fault
from delitos_platform.emulator.server import DEFAULT_SNAPSHOT, SODA2, SODA3, EmulatorServer, Snapshot
from delitos_platform.emulator.synthetic import DEFAULT_END, EMULATOR_ROWS

EMULATOR_EXAMPLES = """examples:
  delitos emulator --port 8000          # then: SOCRATA_URL=http://127.0.0.1:8000 dagster dev
  delitos emulator --admin --fault 429:count=3,retry_after=2
  delitos emulator --family             # every configured dataset, each at its own /resource/{id}.json
  delitos emulator --api soda3 --app-token secret --require-token
"""
APIS_SERVED = (SODA2, SODA3)
SYNTHESIZE_EXAMPLES = """examples:
  delitos synthesize --rows 492000 --seed 7 --output national.json.gz
  delitos synthesize --dataset m8fd-ahd9 --rows 200000 --output homicidios.json.gz
  delitos emulator --snapshot national.json.gz
"""


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``delitos emulator``."""
    parser.add_argument(
        "--snapshot",
        type=Path,
        default=DEFAULT_SNAPSHOT,
        help="a .json or .json.gz JSON array of rows (the shipped Santander snapshot by default)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=port_number, default=8000, help="the port to listen on (0 picks a free one)")
    parser.add_argument("--dataset", default=DATASET_ID, help="the dataset id to serve the snapshot as")
    parser.add_argument(
        "--family",
        action="store_true",
        help="also serve every other configured dataset (delitos_platform/datasets/): its real rows if it ships "
        "some, else synthetic rows in its schema",
    )
    parser.add_argument(
        "--family-rows",
        type=int,
        default=EMULATOR_ROWS,
        help="synthetic rows of each dataset of --family that ships no real rows",
    )
    parser.add_argument("--admin", action="store_true", help="enable the /admin/ endpoints (off by default)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:OPTS",
        help="inject a fault, e.g. 429:count=3,retry_after=2 or reset:probability=0.1 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of probabilistic faults")
    parser.add_argument(
        "--api",
        choices=(*APIS_SERVED, "both"),
        default="both",
        help="the query APIs the portal has: soda2 (GET /resource/), soda3 (POST /api/v3/…/query.json) or both",
    )
    parser.add_argument("--app-token", default=None, help="the one valid app token (others are refused: 403)")
    parser.add_argument("--require-token", action="store_true", help="refuse SODA3 queries without an app token (401)")
    parser.epilog = EMULATOR_EXAMPLES


def port_number(text: str) -> int:
    """A TCP port from the command line: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535)")
    return port


def served_family(args: argparse.Namespace) -> dict[str, Snapshot]:
    """``--snapshot`` as ``--dataset``, then every other configured dataset as :func:`family_snapshots` has it."""
    from delitos_platform.emulator.synthetic import family_snapshots

    if args.family_rows < 1:
        raise ValueError("--family-rows must be at least 1")
    family = family_snapshots(rows=args.family_rows)
    return {args.dataset: args.snapshot, **{key: value for key, value in family.items() if key != args.dataset}}


def run_emulator(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; returns 0 on a clean stop."""
    faults = [parse_fault(spec) for spec in args.fault]  # bad specs fail before loading anything
    server = EmulatorServer(
        args.snapshot,
        host=args.host,
        port=args.port,
        dataset_id=args.dataset,
        datasets=served_family(args) if args.family else None,
        admin=args.admin,
        seed=args.seed,
        apis=APIS_SERVED if args.api == "both" else (args.api,),
        app_token=args.app_token,
        require_token=args.require_token,
    )
    for kind, options in faults:
        server.faults.inject(kind, **options)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    try:
        server.start()
    except OSError as error:
        server.stop()
        raise OSError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        counts = [f"{len(dataset):,} rows of {dataset_id}" for dataset_id, dataset in server.datasets.items()]
        print(f"Serving {', '.join(counts)} at {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def add_synthesize_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``delitos synthesize``."""
    parser.add_argument("--rows", type=int, default=492_000, help="how many rows to write")
    parser.add_argument("--seed", type=int, default=7, help="seed of the resampling (the same seed, the same rows)")
    parser.add_argument("--output", type=Path, required=True, help="the .json.gz (or .json) file to write")
    parser.add_argument(
        "--dataset",
        choices=sorted(configured()),
        default=None,
        help="write rows in this configured dataset's schema (without it: 4v6r-wu98 resampled from --source)",
    )
    parser.add_argument("--start", default=None, help="first month, YYYY-MM (default: the dataset's first month)")
    parser.add_argument("--end", default=DEFAULT_END, help="last month, YYYY-MM")
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SNAPSHOT,
        help="the real rows to resample (for a --dataset that ships none: whose municipalities to take)",
    )
    parser.epilog = SYNTHESIZE_EXAMPLES


def run_synthesize(args: argparse.Namespace) -> int:
    """Write the synthetic snapshot and say where."""
    from delitos_platform.emulator.synthetic import synthesize, synthesize_dataset

    started = time.perf_counter()
    options = {"rows": args.rows, "seed": args.seed, "end": args.end}
    if args.dataset is None:
        start = args.start or dataset_entry(DATASET_ID).first_month
        written = synthesize(args.source, args.output, start=start, **options)
    else:
        entry = dataset_entry(args.dataset)
        written = synthesize_dataset(entry, args.output, start=args.start, source=args.source, **options)
    print(f"Wrote {written:,} rows to {args.output} in {time.perf_counter() - started:.1f} s", file=sys.stdout)
    return 0


EMULATOR = (add_emulator_arguments, run_emulator)
SYNTHESIZE = (add_synthesize_arguments, run_synthesize)

"""Faults the emulator injects on purpose: throttling, server errors, slowness, resets, truncation, odd answers.

Odd answers are what portals are seen to send with a status that looks fine: a 200 HTML maintenance page, a 200
JSON object where rows or metadata were asked for, a 202 while a query is still being computed, and a 403 that
throttles (with ``Retry-After``) or refuses.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("429", "500", "503", "slow", "reset", "truncate", "html", "object", "202", "403")
# Faults strike the query endpoints, SODA2 and SODA3 alike, unless told which paths.
DEFAULT_PATHS = ("/resource/", "/api/v3/")


@dataclass
class Fault:
    """One armed fault: fires for the next ``count`` matching requests or with ``probability``."""

    kind: str
    count: int | None = None
    probability: float | None = None
    paths: tuple[str, ...] = DEFAULT_PATHS
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def retry_after(self) -> int:
        """Seconds announced in ``Retry-After`` by a 429."""
        return int(self.options.get("retry_after", 1))

    @property
    def announces_retry_after(self) -> bool:
        """Whether the answer carries ``Retry-After`` (429 and 503 always; a 403 only when asked to)."""
        return self.kind in ("429", "503") or (self.kind == "403" and "retry_after" in self.options)

    @property
    def delay(self) -> float:
        """Seconds a ``slow`` fault waits before answering."""
        return float(self.options.get("delay", 1.0))

    def matches(self, path: str) -> bool:
        """Whether the fault applies to a request for ``path``."""
        return any(path.startswith(prefix) for prefix in self.paths)


class Faults:
    """The faults armed on a server; a seeded RNG makes probabilistic faults reproducible."""

    def __init__(self, seed: int = 0):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)
        self.fired: dict[str, int] = dict.fromkeys(KINDS, 0)

    def inject(
        self,
        kind: str,
        count: int | None = None,
        probability: float | None = None,
        paths: Iterable[str] | None = None,
        **options: Any,
    ) -> Fault:
        """Arm a fault for the next ``count`` requests, or each request with ``probability``."""
        kind = str(kind)
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (expected one of {', '.join(KINDS)})")
        if (count is None) == (probability is None):
            raise ValueError("give exactly one of count or probability")
        if count is not None and int(count) < 0:
            raise ValueError("count must be >= 0")
        if probability is not None and not 0.0 <= float(probability) <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        fault = Fault(
            kind,
            None if count is None else int(count),
            None if probability is None else float(probability),
            tuple(paths) if paths is not None else DEFAULT_PATHS,
            dict(options),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def seed(self, seed: int) -> None:
        """Restart the random sequence of probabilistic faults."""
        with self._lock:
            self._random = random.Random(seed)

    def active(self) -> list[Fault]:
        """The armed faults (copies are not needed: faults are only read by callers)."""
        with self._lock:
            return list(self._faults)

    def pick(self, path: str) -> Fault | None:
        """The fault to apply to this request, if any (the first armed one that fires)."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(path):
                    continue
                if fault.count is not None:
                    if fault.count <= 0:
                        continue
                    fault.count -= 1
                    self.fired[fault.kind] += 1
                    return fault
                if self._random.random() < (fault.probability or 0.0):
                    self.fired[fault.kind] += 1
                    return fault
            self._faults = [f for f in self._faults if f.count is None or f.count > 0]
        return None


def parse_fault(spec: str) -> tuple[str, dict[str, Any]]:
    """Parse a command-line fault such as ``429:count=3,retry_after=2`` or ``reset:probability=0.1``."""
    kind, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"bad fault option {part!r} in {spec!r} (expected key=value)")
        key = key.strip()
        if key == "paths":
            options[key] = value.split("|")
            continue
        try:
            options[key] = int(value) if key == "count" else float(value)
        except ValueError:
            raise ValueError(f"bad fault option {part!r} in {spec!r} (expected a number)") from None
    if "count" not in options and "probability" not in options:
        options["count"] = 1
    return kind.strip(), options

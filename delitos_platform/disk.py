"""Local files that cannot be written: the sentence that says which file, and how much room is left."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

NO_SPACE = "No space left on device"


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (an ``OSError``, or an engine's error quoting one) means the disk is full."""
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or NO_SPACE in str(error)


def disk_full(path: Path | str) -> str:
    """One sentence: the file that could not be written and the free space left where it goes."""
    return f"the disk is full: cannot write {path} ({free_space(Path(path))} free there)"


def cannot_write(path: Path | str, error: OSError) -> str:
    """One sentence for a file that could not be written: a full disk says so with its free space."""
    if is_disk_full(error):
        return disk_full(path)
    return f"cannot write {path}: {error.strerror or error}"


def free_space(path: Path) -> str:
    """The space left on the file system holding ``path`` (its nearest existing folder), e.g. ``12 KiB``."""
    for folder in [path, *path.parents]:
        if folder.exists():
            return _size(shutil.disk_usage(folder).free)
    return "unknown"


def _size(count: float) -> str:
    units = iter(("KiB", "MiB", "GiB"))
    if count < 1024:
        return f"{count:.0f} bytes"
    unit = next(units)
    count /= 1024
    while count >= 1024 and unit != "GiB":
        unit, count = next(units), count / 1024
    return f"{count:.1f} {unit}"

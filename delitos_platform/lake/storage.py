"""Where lake objects live: a local folder (embedded default) or an S3 bucket (production).

Every write is atomic: a reader sees the old object or the new one, never half of one.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from delitos_platform.disk import cannot_write
from delitos_platform.lake.dataset import DELITOS, LakeDataset
from delitos_platform.lake.parquet import from_parquet_bytes
from delitos_platform.lake.versions import ObjectVersion
from delitos_platform.volume import VolumeGuard

T = TypeVar("T")

STAGING = "_staging"
# Where a run whose window the volume guard held keeps its audited objects, unpublished, for an operator to see.
HELD = "_held"
OUT_OF_CALENDAR = "fuera_de_calendario"


class LakeError(Exception):
    """A lake failure told in one sentence."""


def data_key(month_key: str, dataset: LakeDataset = DELITOS) -> str:
    """The object holding a month's rows, e.g. ``delitos/mes=2024-01/delitos-2024-01.parquet`` (another
    dataset's under its prefix: ``homicidios/homicidios/mes=2024-01/homicidios-2024-01.parquet``)."""
    month, slug = month_key[:7], dataset.slug
    return f"{dataset.prefix}{slug}/mes={month}/{slug}-{month}.parquet"


def quarantine_key(month_key: str, dataset: LakeDataset = DELITOS) -> str:
    """The object holding a month's refused rows and why they were refused."""
    month = month_key[:7]
    return f"{dataset.prefix}quarantine/mes={month}/quarantine-{month}.parquet"


def out_of_calendar_key(dataset: LakeDataset = DELITOS) -> str:
    """The object holding the rows no month holds: no ``fecha_hecho``, before the first month, or in the future."""
    return f"{dataset.prefix}quarantine/{OUT_OF_CALENDAR}/quarantine-{OUT_OF_CALENDAR}.parquet"


def lake_asset_of(key: str) -> str:
    """The lake asset that writes ``key``: ``lake/<slug>`` for an object under a family dataset's prefix
    (``homicidios/…``), else 4v6r-wu98's ``lake/delitos``."""
    first = key.split("/", 1)[0]
    own = {DELITOS.slug, "quarantine", STAGING, HELD, OUT_OF_CALENDAR}
    return f"lake/{first}" if "/" in key and first not in own else f"lake/{DELITOS.slug}"


def staging_key(key: str, run_id: str) -> str:
    """Where a run writes ``key`` before its audit: nothing reads the staging area but that audit."""
    return f"{STAGING}/{run_id}/{key}"


def held_key(key: str, run_id: str) -> str:
    """Where a held run keeps ``key`` aside: never read by any layer, kept for whoever looks into the drop."""
    return f"{HELD}/{run_id}/{key}"


class LakeResource(dg.ConfigurableResource):
    """The lake's interface: write, read and name objects by key; stage, publish and discard them.

    The ``hold_*`` settings are the volume guard's thresholds (``delitos_platform/volume.py``): what the lake, and
    bronze loaded from it, refuse to publish without an explicit acceptance.
    """

    hold_month_drop: float = Field(
        default=VolumeGuard.month_drop, description="A month losing more than this share of its rows is held."
    )
    hold_month_min_rows: int = Field(
        default=VolumeGuard.month_min_rows, description="Months with fewer published rows are never held alone."
    )
    hold_window_drop: float = Field(
        default=VolumeGuard.window_drop, description="A run's window losing more than this share of its rows is held."
    )

    def volume_guard(self) -> VolumeGuard:
        """The volume guard with this lake's thresholds."""
        return VolumeGuard(self.hold_month_drop, self.hold_month_min_rows, self.hold_window_drop)

    def check_writable(self) -> None:
        """Fail early, in one sentence, if objects cannot be written (before any data is fetched)."""
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` atomically and return the object's URI."""
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        """The bytes stored under ``key``."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        raise NotImplementedError

    def uri(self, key: str) -> str:
        """The URI of the object under ``key`` (``file://`` or ``s3://``)."""
        raise NotImplementedError

    def publish(self, staged: str, key: str) -> str:
        """Move the audited object ``staged`` to ``key`` atomically; returns the published object's URI."""
        raise NotImplementedError

    def discard(self, staged: str) -> None:
        """Remove a staged object that will not be published (absent already is fine)."""
        raise NotImplementedError

    @contextmanager
    def local_files(self, keys: Sequence[str]) -> Iterator[dict[str, Path]]:
        """The objects under ``keys`` as local files while the block runs, for readers that take paths.

        Downloaded one at a time into a temporary folder (removed afterwards); a local lake yields its own files.
        """
        with tempfile.TemporaryDirectory(prefix="delitos-lake-") as folder:
            files = {}
            for index, key in enumerate(keys):
                files[key] = Path(folder) / f"{index}.parquet"
                files[key].write_bytes(self.read(key))
            yield files

    def parquet_rows(self, key: str) -> int:
        """The rows of the Parquet object under ``key``, read from its footer."""
        data = self.read(key)
        with self.readable(key):
            return pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows

    def object_version(self, key: str) -> ObjectVersion | None:
        """The source version the Parquet object under ``key`` records in its footer (``None``: it records none)."""
        data = self.read(key)
        with self.readable(key):
            return ObjectVersion.of(pq.read_metadata(pa.BufferReader(data)).metadata)

    def read_table(self, key: str) -> pa.Table:
        """The Parquet object under ``key`` as an Arrow table."""
        data = self.read(key)
        with self.readable(key):
            return from_parquet_bytes(data)

    @contextmanager
    def readable(self, key: str) -> Iterator[None]:
        """Turns a Parquet object that cannot be read (truncated, garbage) into one sentence saying what to do."""
        try:
            yield
        except (pa.ArrowException, OSError) as error:
            month = re.search(r"mes=(\d{4}-\d{2})", key)
            asset = lake_asset_of(key)
            again = f"materialize {asset} for {month.group(1)}" if month else "materialize any month of it"
            reason = str(error).strip().split(". ")[0].rstrip(".") or type(error).__name__
            raise LakeError(
                f"the lake object {self.uri(key)} is not readable Parquet ({reason}): {again} again to rewrite it"
            ) from None

    @contextmanager
    def staging_area(self, run_id: str) -> Iterator[None]:
        """Hold ``run_id``'s staging area for the block, so that no other run sweeps it away as abandoned."""
        yield

    def sweep_staging(self, run_is_over: Callable[[str], bool]) -> list[str]:
        """Discard what runs that are over left in staging (a killed run cleans nothing); returns their run ids."""
        raise NotImplementedError


class LocalLake(LakeResource):
    """The embedded lake: objects are files under ``root`` (``$DELITOS_DATA_DIR/lake``)."""

    root: str = Field(description="Folder that holds the lake's objects.")

    def path(self, key: str) -> Path:
        """The file of an object."""
        return Path(self.root).resolve() / key

    def check_writable(self) -> None:
        root = Path(self.root)
        if root.exists() and not root.is_dir():
            raise LakeError(f"the lake folder {root} is a file, not a folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=root):
                pass
        except OSError as error:
            raise LakeError(f"the lake folder is not writable: {cannot_write(root, error)}") from None

    def write(self, key: str, data: bytes) -> str:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the target, flush to disk, then rename over it: rename is atomic on POSIX.
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as error:
            raise LakeError(cannot_write(target, error)) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException as error:
            Path(temporary).unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise LakeError(cannot_write(target, error)) from None
            raise
        _fsync_directory(target.parent)
        return self.uri(key)

    def read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise LakeError(f"the lake has no object {self.uri(key)}: materialize {lake_asset_of(key)} first") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def publish(self, staged: str, key: str) -> str:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path(staged), target)  # the staged file was flushed to disk when it was written
        except OSError as error:
            raise LakeError(cannot_write(target, error)) from None
        _fsync_directory(target.parent)
        return self.uri(key)

    def discard(self, staged: str) -> None:
        path = self.path(staged)
        path.unlink(missing_ok=True)
        # Empty staging folders go too, up to the staging area itself.
        for folder in path.parents:
            if folder == self.path(STAGING).parent:
                break
            with suppress(OSError):
                folder.rmdir()

    @contextmanager
    def local_files(self, keys: Sequence[str]) -> Iterator[dict[str, Path]]:
        missing = [key for key in keys if not self.exists(key)]
        if missing:
            raise LakeError(
                f"the lake has no object {self.uri(missing[0])}: materialize {lake_asset_of(missing[0])} first"
            )
        yield {key: self.path(key) for key in keys}

    def parquet_rows(self, key: str) -> int:
        if not self.path(key).is_file():
            raise LakeError(f"the lake has no object {self.uri(key)}: materialize {lake_asset_of(key)} first")
        with self.readable(key):
            return pq.read_metadata(self.path(key)).num_rows  # the footer alone, not the whole object

    def object_version(self, key: str) -> ObjectVersion | None:
        if not self.path(key).is_file():
            raise LakeError(f"the lake has no object {self.uri(key)}: materialize {lake_asset_of(key)} first")
        with self.readable(key):
            return ObjectVersion.of(pq.read_metadata(self.path(key)).metadata)  # the footer alone

    @contextmanager
    def staging_area(self, run_id: str) -> Iterator[None]:
        # A lock file beside the run's staging folder, held while the run lives: the kernel lets go of it
        # when the process dies, however it dies, which is how a sweep tells an abandoned area from a live one.
        lock = self._hold_staging_lock(run_id)
        try:
            yield
        finally:
            shutil.rmtree(self.path(staging_key("", run_id)), ignore_errors=True)
            self._staging_lock(run_id).unlink(missing_ok=True)
            os.close(lock)

    def sweep_staging(self, run_is_over: Callable[[str], bool]) -> list[str]:
        # The locks know better than the run's status: a killed run's lock is free at once, its status may
        # say STARTED for ever. ``run_is_over`` is for lakes without locks.
        area = self.path(STAGING)
        runs = sorted({entry.name.removesuffix(".lock") for entry in area.iterdir()}) if area.is_dir() else []
        return [run_id for run_id in runs if self._sweep_if_abandoned(run_id)]

    def _staging_lock(self, run_id: str) -> Path:
        return self.path(STAGING) / f"{run_id}.lock"

    def _hold_staging_lock(self, run_id: str) -> int:
        path = self._staging_lock(run_id)
        while True:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue  # another run's clean-up removed the empty staging area meanwhile
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_at(fd, path):  # a sweep may have removed the file between open and lock: take a new one
                return fd
            os.close(fd)

    def _sweep_if_abandoned(self, run_id: str) -> bool:
        """Remove a run's staging folder and lock when no live process holds the lock."""
        path = self._staging_lock(run_id)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            fd = None  # a folder without a lock: left by a sweep cut short, or by a version without locks
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # a live run's
                if not _still_at(fd, path):
                    return False
            shutil.rmtree(self.path(staging_key("", run_id)), ignore_errors=True)
            path.unlink(missing_ok=True)
            return True
        finally:
            if fd is not None:
                os.close(fd)


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not removed or replaced since it was opened)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Lake(LakeResource):
    """The production lake: objects in an S3 bucket, each stored by one encrypted ``PutObject``."""

    s3: S3Resource
    bucket: str = Field(description="Bucket of the lake (DELITOS_LAKE_BUCKET).")
    prefix: str = Field(default="", description="Key prefix inside the bucket (DELITOS_LAKE_PREFIX).")
    kms_key_id: str | None = Field(
        default=None, description="KMS key for aws:kms encryption (DELITOS_LAKE_KMS_KEY_ID); AES256 when unset."
    )
    _client: Any = PrivateAttr(default=None)

    def object_key(self, key: str) -> str:
        """The S3 key of a lake key, under the configured prefix."""
        prefix = self.prefix.strip("/")
        return f"{prefix}/{key}" if prefix else key

    def encryption(self) -> dict[str, str]:
        """The server-side encryption arguments of every ``PutObject``."""
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}

    def check_writable(self) -> None:
        self._call("reach", lambda client: client.head_bucket(Bucket=self.bucket))

    def write(self, key: str, data: bytes) -> str:
        # A single PutObject is atomic: S3 never exposes a partly written object.
        self._call(
            "write to",
            lambda client: client.put_object(
                Bucket=self.bucket, Key=self.object_key(key), Body=data, **self.encryption()
            ),
        )
        return self.uri(key)

    def read(self, key: str) -> bytes:
        response = self._call(
            "read from", lambda client: client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        )
        return response["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._s3_client().head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise LakeError(self._explain("read from", error)) from None
        return True

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def publish(self, staged: str, key: str) -> str:
        # The final key is written only now, after the audit, by one server-side copy (atomic like PutObject).
        source = {"Bucket": self.bucket, "Key": self.object_key(staged)}
        self._call(
            "publish to",
            lambda client: client.copy_object(
                Bucket=self.bucket, Key=self.object_key(key), CopySource=source, **self.encryption()
            ),
        )
        with suppress(LakeError):  # published: a staged copy left behind goes with the next sweep
            self.discard(staged)
        return self.uri(key)

    def discard(self, staged: str) -> None:
        self._call("clean up", lambda client: client.delete_object(Bucket=self.bucket, Key=self.object_key(staged)))

    def sweep_staging(self, run_is_over: Callable[[str], bool]) -> list[str]:
        # S3 has no locks: a run's staging goes once the run is over (a killed run is marked so by Dagster's
        # run monitoring).
        area = self.object_key(f"{STAGING}/")
        runs = [
            prefix["Prefix"][len(area) :].rstrip("/")
            for page in self._pages(Prefix=area, Delimiter="/")
            for prefix in page.get("CommonPrefixes", [])
        ]
        swept = [run_id for run_id in runs if run_is_over(run_id)]
        for run_id in swept:
            for page in self._pages(Prefix=self.object_key(staging_key("", run_id))):
                for stored in page.get("Contents", []):
                    key = stored["Key"]
                    self._call("clean up", lambda client, key=key: client.delete_object(Bucket=self.bucket, Key=key))
        return swept

    def _pages(self, **listing: str) -> list[dict[str, Any]]:
        return self._call(
            "list", lambda client: list(client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, **listing))
        )

    def _call(self, verb: str, action: Callable[[Any], T]) -> T:
        try:
            return action(self._s3_client())
        except (BotoCoreError, ClientError) as error:
            raise LakeError(self._explain(verb, error)) from None

    def _s3_client(self) -> Any:
        """One boto3 client for the resource's life (thread-safe): making one costs tenths of a second."""
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def _explain(self, verb: str, error: Exception) -> str:
        return f"cannot {verb} S3 bucket {self.bucket!r}: {_s3_reason(verb, error)}"


S3_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "no such object (materialize lake/delitos first)",
    "403": "access denied (403)",
    "AccessDenied": "access denied (AccessDenied)",
    "InvalidAccessKeyId": "access denied (InvalidAccessKeyId)",
    "SignatureDoesNotMatch": "access denied (SignatureDoesNotMatch)",
}


def _s3_reason(verb: str, error: Exception) -> str:
    """Why an S3 call failed, in a few words (a bucket probe's bare 404 means the bucket is missing)."""
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if isinstance(error, EndpointConnectionError):
        return f"the S3 endpoint is unreachable ({error.kwargs.get('endpoint_url')})"
    if not isinstance(error, ClientError):
        return str(error)
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    if code == "404":
        code = "NoSuchBucket" if verb == "reach" else "NoSuchKey"
    return S3_REASONS.get(code, f"{code} {details.get('Message', '')}".strip())

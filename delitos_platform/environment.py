"""Which resources run where: the only module that reads ``DELITOS_ENV`` and the settings around it.

``local`` (the default) is the embedded platform: a lake folder under ``DELITOS_DATA_DIR``.
``prod`` is the production platform: an S3 lake. Secrets are always ``dg.EnvVar`` (resolved at run
time, never stored in configuration); AWS credentials are left to boto3's own chain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from delitos_platform.contract import DATASET_ID
from delitos_platform.lake.storage import LocalLake, S3Lake
from delitos_platform.socrata import SocrataResource

ENVIRONMENTS = ("local", "prod")


def current_environment(environ: Mapping[str, str] = os.environ) -> str:
    """``DELITOS_ENV``, checked: ``local`` unless set."""
    environment = environ.get("DELITOS_ENV", "local").strip().lower() or "local"
    if environment not in ENVIRONMENTS:
        raise ValueError(f"DELITOS_ENV must be one of {', '.join(ENVIRONMENTS)}, not {environment!r}")
    return environment


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``DELITOS_DATA_DIR`` (default ``./data``): the embedded lake and warehouse live under it."""
    return Path(environ.get("DELITOS_DATA_DIR") or "data").resolve()


def socrata_resource(environ: Mapping[str, str] = os.environ) -> SocrataResource:
    """The source: the real API unless ``SOCRATA_URL`` points elsewhere (our emulator, offline)."""
    return SocrataResource(
        url=environ.get("SOCRATA_URL") or "https://www.datos.gov.co",
        dataset_id=environ.get("SOCRATA_DATASET") or DATASET_ID,
        app_token=dg.EnvVar("SOCRATA_APP_TOKEN") if environ.get("SOCRATA_APP_TOKEN") else None,
    )


def lake_resource(environment: str, environ: Mapping[str, str] = os.environ) -> LocalLake | S3Lake:
    """The lake of an environment: a local folder, or an encrypted S3 prefix."""
    if environment == "local":
        return LocalLake(root=str(data_dir(environ) / "lake"))
    return S3Lake(
        s3=S3Resource(
            endpoint_url=environ.get("AWS_ENDPOINT_URL") or None,
            region_name=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
        ),
        bucket=dg.EnvVar("DELITOS_LAKE_BUCKET"),
        prefix=environ.get("DELITOS_LAKE_PREFIX", ""),
        kms_key_id=environ.get("DELITOS_LAKE_KMS_KEY_ID") or None,
    )


def build_resources(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Every resource of the code location, chosen by ``DELITOS_ENV``."""
    environment = current_environment(environ)
    return {
        "socrata": socrata_resource(environ),
        "lake": lake_resource(environment, environ),
    }

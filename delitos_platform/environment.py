"""Which resources run where: the only module that reads ``DELITOS_ENV`` and the settings around it.

``local`` (the default) is the embedded platform: a lake folder and a DuckDB file under ``DELITOS_DATA_DIR``.
``prod`` is the production platform: an S3 lake and Snowflake. Secrets are always ``dg.EnvVar``
(resolved at run time, never stored in configuration); AWS credentials are left to boto3's own chain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from delitos_platform.alert_channels import alert_resources
from delitos_platform.contract import DATASET_ID, SOCRATA_DOMAIN
from delitos_platform.lake.storage import LocalLake, S3Lake
from delitos_platform.locations import data_dir, warehouse_path
from delitos_platform.socrata import SocrataResource
from delitos_platform.socrata.apis import APIS, AUTO
from delitos_platform.transform import DBT_EXECUTABLE, DelitosDbtCliResource, delitos_dbt_project
from delitos_platform.warehouse.base import WarehouseResource
from delitos_platform.warehouse.duckdb import DEFAULT_WAIT_SECONDS, DuckDBWarehouse

ENVIRONMENTS = ("local", "prod")
SNOWFLAKE_SETTINGS = (
    "SNOWFLAKE_ACCOUNT",
    "SNOWFLAKE_USER",
    "SNOWFLAKE_ROLE",
    "SNOWFLAKE_WAREHOUSE",
    "SNOWFLAKE_DATABASE",
)
# What production cannot run without (Snowflake's password or key is checked beside them).
PROD_SETTINGS = ("DELITOS_LAKE_BUCKET", *SNOWFLAKE_SETTINGS, "DELITOS_SNOWFLAKE_STAGE")


def current_environment(environ: Mapping[str, str] = os.environ) -> str:
    """``DELITOS_ENV``, checked: ``local`` unless set."""
    environment = environ.get("DELITOS_ENV", "local").strip().lower() or "local"
    if environment not in ENVIRONMENTS:
        raise ValueError(f"DELITOS_ENV must be one of {', '.join(ENVIRONMENTS)}, not {environment!r}")
    return environment


def warehouse_wait_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """``DELITOS_WAREHOUSE_WAIT_SECONDS``: how long a run waits for another to let go of the embedded warehouse."""
    setting = environ.get("DELITOS_WAREHOUSE_WAIT_SECONDS", "").strip()
    try:
        seconds = float(setting) if setting else DEFAULT_WAIT_SECONDS
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"DELITOS_WAREHOUSE_WAIT_SECONDS must be a number of seconds (0 or more), not {setting!r}")
    return seconds


# The volume guard's thresholds (delitos_platform/volume.py): setting → LakeResource field, and what it must be.
HOLD_SETTINGS = {
    "DELITOS_HOLD_MONTH_DROP": ("hold_month_drop", float, "a share between 0 and 1"),
    "DELITOS_HOLD_MONTH_MIN_ROWS": ("hold_month_min_rows", int, "a whole number of rows (0 or more)"),
    "DELITOS_HOLD_WINDOW_DROP": ("hold_window_drop", float, "a share between 0 and 1"),
}


def hold_settings(environ: Mapping[str, str] = os.environ) -> dict[str, float | int]:
    """The volume guard's thresholds that are set (``DELITOS_HOLD_*``), checked; the lake's defaults otherwise."""
    settings: dict[str, float | int] = {}
    for name, (field, kind, meaning) in HOLD_SETTINGS.items():
        text = environ.get(name, "").strip()
        if not text:
            continue
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if value < 0 or (kind is float and value > 1):
            raise ValueError(f"{name} must be {meaning}, not {text!r}")
        settings[field] = value
    return settings


def socrata_api(environ: Mapping[str, str] = os.environ) -> str:
    """``SOCRATA_API``, checked: ``auto`` (SODA3, or SODA2 where the portal has no SODA3) unless set."""
    api = environ.get("SOCRATA_API", AUTO).strip().lower() or AUTO
    if api not in APIS:
        raise ValueError(f"SOCRATA_API must be one of {', '.join(APIS)}, not {api!r}")
    return api


def socrata_resource(environ: Mapping[str, str] = os.environ) -> SocrataResource:
    """The source: the real API unless ``SOCRATA_URL`` points elsewhere (our emulator, offline)."""
    return SocrataResource(
        url=environ.get("SOCRATA_URL") or SOCRATA_DOMAIN,
        dataset_id=environ.get("SOCRATA_DATASET") or DATASET_ID,
        app_token=dg.EnvVar("SOCRATA_APP_TOKEN") if environ.get("SOCRATA_APP_TOKEN") else None,
        api=socrata_api(environ),
    )


def lake_resource(environment: str, environ: Mapping[str, str] = os.environ) -> LocalLake | S3Lake:
    """The lake of an environment: a local folder, or an encrypted S3 prefix."""
    if environment == "local":
        return LocalLake(root=str(data_dir(environ) / "lake"), **hold_settings(environ))
    return S3Lake(
        s3=S3Resource(
            endpoint_url=environ.get("AWS_ENDPOINT_URL") or None,
            region_name=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
        ),
        bucket=dg.EnvVar("DELITOS_LAKE_BUCKET"),
        prefix=environ.get("DELITOS_LAKE_PREFIX", ""),
        kms_key_id=environ.get("DELITOS_LAKE_KMS_KEY_ID") or None,
        **hold_settings(environ),
    )


def warehouse_resource(environment: str, environ: Mapping[str, str] = os.environ) -> WarehouseResource:
    """The bronze warehouse of an environment: a DuckDB file, or Snowflake."""
    if environment == "local":
        return DuckDBWarehouse(
            duckdb=DuckDBResource(database=str(warehouse_path(environ))), wait_seconds=warehouse_wait_seconds(environ)
        )
    # Imported here: the Snowflake connector is heavy and the embedded platform never needs it.
    from dagster_snowflake import SnowflakeResource

    from delitos_platform.warehouse.snowflake import SnowflakeWarehouse

    settings = {name.removeprefix("SNOWFLAKE_").lower(): dg.EnvVar(name) for name in SNOWFLAKE_SETTINGS}
    return SnowflakeWarehouse(
        snowflake=SnowflakeResource(**settings, **_snowflake_auth(environ)),
        stage=dg.EnvVar("DELITOS_SNOWFLAKE_STAGE"),
        stage_prefix=environ.get("DELITOS_SNOWFLAKE_STAGE_PREFIX", ""),
    )


def _snowflake_auth(environ: Mapping[str, str]) -> dict[str, dg.EnvVar]:
    """Key-pair auth when a key is configured, else the password: secrets stay ``dg.EnvVar``."""
    if environ.get("SNOWFLAKE_PRIVATE_KEY_PATH"):
        auth = {"private_key_path": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PATH")}
        if environ.get("SNOWFLAKE_PRIVATE_KEY_PASSWORD"):
            auth["private_key_password"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSWORD")
        return auth
    return {"password": dg.EnvVar("SNOWFLAKE_PASSWORD")}


def dbt_resource(environment: str) -> DelitosDbtCliResource:
    """dbt, with the profile target of the environment (``duckdb`` or ``snowflake``)."""
    return DelitosDbtCliResource(
        project_dir=delitos_dbt_project,
        dbt_executable=DBT_EXECUTABLE,
        target="duckdb" if environment == "local" else "snowflake",
    )


def require_prod_settings(environ: Mapping[str, str] = os.environ) -> None:
    """Raise one ``ValueError`` naming every production setting that is unset (not the first one only)."""
    missing = [name for name in PROD_SETTINGS if not environ.get(name)]
    if not environ.get("SNOWFLAKE_PASSWORD") and not environ.get("SNOWFLAKE_PRIVATE_KEY_PATH"):
        missing.append("SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH")
    if missing:
        raise ValueError(f"DELITOS_ENV=prod needs settings that are unset: {', '.join(missing)}")


def build_resources(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Every resource of the code location, chosen by ``DELITOS_ENV``."""
    environment = current_environment(environ)
    if environment == "prod":
        require_prod_settings(environ)
    return {
        "socrata": socrata_resource(environ),
        "lake": lake_resource(environment, environ),
        "warehouse": warehouse_resource(environment, environ),
        "dbt": dbt_resource(environment),
        **alert_resources(environ),
    }

"""The Socrata dataset itself: the upstream end of every lineage path."""

from __future__ import annotations

import dagster as dg

from delitos_platform.contract import ATTRIBUTION, DATASET_ID
from delitos_platform.partitions import monthly_partitions

SOCRATA_DELITOS = dg.AssetKey(["socrata", "delitos_informaticos"])

socrata_delitos = dg.AssetSpec(
    key=SOCRATA_DELITOS,
    description=(
        f'Dataset `{DATASET_ID}` ("DELITOS INFORMÁTICOS") on www.datos.gov.co: every cybercrime reported '
        "to the Policía Nacional, one row per report, refreshed monthly and revised. "
        f"{ATTRIBUTION}."
    ),
    partitions_def=monthly_partitions,
    group_name="source",
    kinds={"socrata"},
    owners=["team:data-engineering"],
    metadata={
        "dataset": dg.MetadataValue.url(f"https://www.datos.gov.co/d/{DATASET_ID}"),
        "partitioned_on": "fecha_hecho (monthly, half-open windows)",
    },
)

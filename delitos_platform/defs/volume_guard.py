"""The volume guard in Dagster's terms: its blocking check, the run tag that accepts a drop, what they record.

The guard itself (which months fall implausibly) is ``delitos_platform/volume.py``; the lake and bronze assets
evaluate it before they publish.
"""

import dagster as dg

from delitos_platform.volume import HOW_TO_ACCEPT, VolumeVerdict

# The blocking check of the volume guard, on the lake and on bronze (delitos_platform/volume.py).
VOLUME_CHECK = "volume_plausible"
# The run tag by which an operator accepts a drop the volume guard would hold ("true"); recorded on the
# materializations it lets through.
ACCEPT_DROP_TAG = "delitos/accept_volume_drop"


def drop_accepted(context: dg.AssetExecutionContext) -> bool:
    """Whether the run accepts a drop the volume guard would hold (its ``ACCEPT_DROP_TAG``)."""
    return context.run.tags.get(ACCEPT_DROP_TAG, "").strip().lower() == "true"


def volume_check_result(verdict: VolumeVerdict, accepted: bool, held_at: str | None = None) -> dg.AssetCheckResult:
    """The volume check: passes when nothing fell sharply, or when the run accepted the drop (and says so)."""
    if verdict.plausible:
        description = f"no month fell sharply: {verdict.describe()}"
    elif accepted:
        description = f"a drop accepted by the run's tag {ACCEPT_DROP_TAG}=true was published: {verdict.describe()}"
    else:
        aside = f" (its objects are kept aside in {held_at})" if held_at else ""
        description = f"held, nothing was published{aside}: {verdict.describe()}; {HOW_TO_ACCEPT}"
    return dg.AssetCheckResult(
        check_name=VOLUME_CHECK,
        passed=verdict.plausible or accepted,
        description=description,
        metadata={
            "months_fallen": len(verdict.sharp),
            "published_rows": verdict.published,
            "proposed_rows": verdict.proposed,
            "drop_accepted": accepted and not verdict.plausible,
        },
    )


def drop_metadata(verdict: VolumeVerdict, accepted: bool) -> dict[str, dg.MetadataValue]:
    """On a materialization that published an accepted drop: that it was accepted, and what fell."""
    if verdict.plausible or not accepted:
        return {}
    return {
        "volume_drop_accepted": dg.MetadataValue.text(f"{ACCEPT_DROP_TAG}=true: {verdict.describe()}"),
        "volume_rows_lost": dg.MetadataValue.int(verdict.lost),
    }

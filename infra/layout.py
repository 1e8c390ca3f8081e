"""The whole layout of the data lake, in one place.

Keys are bucket-relative and identical on S3 and on the local disk mirror. Data objects are
*logical* keys: `Lake.publish` writes each under a versioned physical name and commits the set
with a manifest, so a reader always goes through the manifest of its stage and snapshot.

    raw/<table>/snapshot=D/<table>.parquet           landed tables      (commit: raw manifest)
    raw/_manifests/snapshot=D/_manifest.json
    ground_truth/snapshot=D/ground_truth.parquet     synthetic truth, never read by features
    validated/<table>/snapshot=D/<table>.parquet     tables that passed (commit: manifest)
    validated/_manifests/snapshot=D/_manifest.json
    quarantine/<table>/snapshot=D/<table>.parquet    rows refused by the contracts
    reports/validation/snapshot=D/report.{json,html} one validation run
    reports/validation/history.json                  score per snapshot (the explorer's chart)
    features/<view>/snapshot=D/<view>.parquet        point-in-time feature tables of snapshot D
    features/_manifests/snapshot=D/_manifest.json    commit point of snapshot D's feature build
    features/_current.json                           the build Feast's sources point at (the
                                                     newest snapshot built; one atomic object)
    predictions/snapshot=D/predictions.parquet       batch scores of the open deals
    predictions/_manifests/snapshot=D/_manifest.json
    logs/predictions/date=D/<batch>.parquet          every score the HTTP service returned
    reports/monitoring/snapshot=D/report.{json,html} drift, skew and realised performance
    _leases/<name>.json                              one writer at a time (a snapshot, a run)
                                                     (a publish: `publish_lease_name`)
    _leases/runs/pipeline.json                       one pipeline run at a time per lake
                                                     (crm-daily, crm-pipeline, train-weekly)
"""

from __future__ import annotations

MANIFEST = "_manifest.json"


def _table(stage: str, table: str, snapshot: str) -> str:
    return f"{stage}/{table}/snapshot={snapshot}/{table}.parquet"


def manifests_prefix(stage: str) -> str:
    """Folder of a stage's per-snapshot manifests (its `snapshot=` partitions list snapshots)."""
    return f"{stage}/_manifests"


def _manifest(stage: str, snapshot: str) -> str:
    return f"{manifests_prefix(stage)}/snapshot={snapshot}/{MANIFEST}"


# --- landing ----------------------------------------------------------------------------------
RAW = "raw"


def raw_key(table: str, snapshot: str) -> str:
    """Logical key of a landed table (the manifest maps it to the physical object)."""
    return _table(RAW, table, snapshot)


def raw_manifest_key(snapshot: str) -> str:
    """The commit point of a landed snapshot: one manifest for all four tables."""
    return _manifest(RAW, snapshot)


def ground_truth_key(snapshot: str) -> str:
    return f"ground_truth/snapshot={snapshot}/ground_truth.parquet"


# --- validation -------------------------------------------------------------------------------
VALIDATED = "validated"
VALIDATION_REPORTS = "reports/validation"
VALIDATION_HISTORY_KEY = f"{VALIDATION_REPORTS}/history.json"


def validated_key(table: str, snapshot: str) -> str:
    return _table(VALIDATED, table, snapshot)


def validated_manifest_key(snapshot: str) -> str:
    return _manifest(VALIDATED, snapshot)


def quarantine_key(table: str, snapshot: str) -> str:
    return _table("quarantine", table, snapshot)


def validation_report_prefix(snapshot: str) -> str:
    return f"{VALIDATION_REPORTS}/snapshot={snapshot}"


# --- features ---------------------------------------------------------------------------------
FEATURES = "features"
FEATURES_CURRENT_KEY = f"{FEATURES}/_current.json"


def feature_key(view: str, snapshot: str) -> str:
    """Logical key of a feature view's table in snapshot `snapshot`'s build."""
    return _table(FEATURES, view, snapshot)


def features_manifest_key(snapshot: str) -> str:
    """The commit point of one snapshot's feature build: every view together."""
    return _manifest(FEATURES, snapshot)


# --- predictions and monitoring ---------------------------------------------------------------
PREDICTIONS = "predictions"


def predictions_key(snapshot: str) -> str:
    return f"{PREDICTIONS}/snapshot={snapshot}/predictions.parquet"


def predictions_manifest_key(snapshot: str) -> str:
    return _manifest(PREDICTIONS, snapshot)


def prediction_log_prefix(day: str) -> str:
    return f"logs/predictions/date={day}"


MONITORING_REPORTS = "reports/monitoring"


def monitoring_report_prefix(snapshot: str) -> str:
    return f"{MONITORING_REPORTS}/snapshot={snapshot}"


def monitoring_report_keys(snapshot: str) -> tuple[str, str]:
    """report.json (what the explorer and `crm monitor --json` read) and report.html."""
    prefix = monitoring_report_prefix(snapshot)
    return f"{prefix}/report.json", f"{prefix}/report.html"


def lease_key(name: str) -> str:
    return f"_leases/{name}.json"


RUNS_PREFIX = "runs/"
# The chains that write every stage (daily, the whole pipeline, the weekly train) take turns.
PIPELINE_RUN_LEASE = f"{RUNS_PREFIX}pipeline"


def publish_lease_name(manifest_key: str) -> str:
    """The lease a publish of `manifest_key` holds: one writer per stage and snapshot.

    `raw/_manifests/snapshot=D/_manifest.json` -> `raw/snapshot=D` (its key: `lease_key(name)`).
    """
    parts = [p for p in manifest_key.strip("/").split("/") if p not in ("_manifests", MANIFEST)]
    return "/".join(parts) or "lake"

"""`feast -f feature_repo/local/feature_store.yaml apply` from a project root, as a user runs it.

Needs no server, but starts the real `feast` CLI (slow to import): the pipeline tier.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from feast import FeatureStore

from feature_repo.definitions import committed_feature_objects
from feature_tables.compute import VIEWS, compute_feature_tables, write_feature_tables
from infra.lake import Lake
from infra.settings import PROJECT_ROOT, Settings
from tests.support.cli import BIN, run
from tests.support.feature_reference import random_tables


def test_feast_cli_apply_from_the_project_root(tmp_path: Path) -> None:
    """`feast -f feature_repo/local/feature_store.yaml apply` run from a project root."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(PROJECT_ROOT / "feature_repo", root / "feature_repo")
    shutil.copy(PROJECT_ROOT / ".feastignore", root / ".feastignore")
    # Things the root .feastignore must keep out of the scan (they would fail if imported).
    (root / "scripts").mkdir()
    (root / "scripts" / "boom.py").write_text("raise SystemExit('scanned!')\n")
    (root / "setup_helper.py").write_text("raise SystemExit('scanned!')\n")
    # The definitions point at the committed feature build: `crm features` runs first.
    lake = Lake.from_settings(Settings(profile="local", home=root / ".crm", _env_file=None))
    write_feature_tables(lake, compute_feature_tables(random_tables(300, 1)))
    env = {**os.environ, "CRM_HOME": str(root / ".crm"), "CRM_PROFILE": "local"}
    yaml = "feature_repo/local/feature_store.yaml"
    result = run([BIN / "feast", "-f", yaml, "apply"], env=env, cwd=root, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / ".crm/feast_registry.db").is_file()
    store = FeatureStore(
        repo_path=str(root), fs_yaml_file=root / "feature_repo/local/feature_store.yaml"
    )
    assert [s.name for s in store.list_feature_services()] == ["opportunity_scoring_v1"]
    assert {v.name for v in store.list_feature_views()} == set(VIEWS)
    source = store.get_feature_view("account_profile").batch_source.path
    committed = committed_feature_objects(lake)["account_profile"]
    assert source == lake.uri(committed)
    assert source.startswith(str(root / ".crm/lake/data-lake/features/account_profile/"))

"""Where `crm stack up` puts secrets: files only its owner reads, never a command line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from infra.stack import catalogue, provision
from tests.support.settings import make

PASSWORD = "p@ss:w/rd#1"


def test_s3_config_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "seaweedfs" / "s3.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)  # as the old code left it: world-readable
    old_umask = os.umask(0o022)
    try:
        provision.write_s3_config(make(profile="stack"), path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    identity = json.loads(path.read_text())["identities"][0]
    assert identity["credentials"] == [{"accessKey": "crm", "secretKey": "crm-secret-key"}]
    assert [p.name for p in path.parent.iterdir()] == ["s3.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s3.json"
    provision.write_private(path, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(provision.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        provision.write_private(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["s3.json"]


def test_mlflow_gets_its_database_password_from_the_environment_not_argv(tmp_path: Path) -> None:
    settings = make(profile="stack", pg_password=PASSWORD)
    service = catalogue.mlflow(settings)
    assert service.command is not None
    argv = " ".join(service.command)
    assert "--backend-store-uri" not in argv
    assert "p%40ss" not in argv and PASSWORD not in argv
    assert service.env["MLFLOW_BACKEND_STORE_URI"] == settings.pg_dsn(
        settings.pg_db_mlflow, driver="postgresql+psycopg2"
    )


def test_no_service_of_the_stack_has_a_secret_on_its_command_line(tmp_path: Path) -> None:
    settings = make(profile="stack", pg_password=PASSWORD, s3_secret_access_key="s3-" + PASSWORD)
    for service in catalogue.services(settings, tmp_path):
        argv = " ".join(service.command or [])
        for secret in (PASSWORD, "p%40ss", "s3-"):
            assert secret not in argv, f"{service.name}: {argv}"

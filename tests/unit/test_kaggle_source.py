"""The Kaggle source with an injected downloader: never reaches the internet."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ingestion.csv_files import write_csv_folder
from ingestion.errors import SourceError
from ingestion.kaggle_source import DATASET, kaggle_credentials, load_kaggle
from ingestion.source_data import SourceData
from ingestion.sources import load_source
from ingestion.synthetic import generate
from ingestion.tables import SALES_PIPELINE, TABLES

CREDENTIAL_VARS = (
    "KAGGLE_USERNAME",
    "KAGGLE_KEY",
    "KAGGLE_API_TOKEN",
    "KAGGLE_CONFIG_DIR",
    "XDG_CONFIG_HOME",
)


@pytest.fixture(scope="module")
def tables() -> SourceData:
    return generate(400, seed=11)


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_fake_download_is_read_like_a_folder(tables: SourceData, tmp_path: Path) -> None:
    calls: list[tuple[str, Path]] = []

    def download(dataset: str, dest: Path) -> None:
        calls.append((dataset, dest))
        write_csv_folder(tables.tables, dest)
        (dest / "data_dictionary.csv").write_text("Table,Field,Description\n")

    data = load_kaggle(download=download, workdir=tmp_path)
    assert calls[0][0] == DATASET == "innocentmfa/crm-sales-opportunities"
    assert data.source == "kaggle"
    assert data.ground_truth is None
    for name in TABLES:
        assert data.tables[name].equals(tables.tables[name]), name
    assert set(data.checksums) == {f"{name}.csv" for name in TABLES}
    assert not calls[0][1].exists()  # the temporary download is cleaned up


def test_nested_download_folder_is_found(tables: SourceData, tmp_path: Path) -> None:
    data = load_kaggle(
        download=lambda _, dest: write_csv_folder(tables.tables, dest / "archive" / "v2"),
        workdir=tmp_path,
    )
    assert data.tables[SALES_PIPELINE].num_rows == 400


def test_download_without_the_files(tmp_path: Path) -> None:
    def download(_: str, dest: Path) -> None:
        (dest / "readme.txt").write_text("moved")

    with pytest.raises(SourceError, match=r"without sales_pipeline\.csv \(got: readme\.txt\)"):
        load_kaggle(download=download, workdir=tmp_path)


def test_network_error_names_both_ways_out(tmp_path: Path) -> None:
    def download(dataset: str, dest: Path) -> None:
        raise ConnectionError("Name or service not known: www.kaggle.com")

    with pytest.raises(SourceError) as info:
        load_kaggle(download=download, workdir=tmp_path)
    message = str(info.value)
    assert "ConnectionError" in message and "Name or service not known" in message
    assert "KAGGLE_USERNAME/KAGGLE_KEY" in message and "~/.kaggle/kaggle.json" in message
    assert "--source dir:PATH" in message and "--source synthetic" in message


def test_client_exit_is_turned_into_a_source_error(tmp_path: Path) -> None:
    def download(dataset: str, dest: Path) -> None:
        raise SystemExit(1)  # what the kaggle client does when authentication fails

    with pytest.raises(SourceError, match="Could not download"):
        load_kaggle(download=download, workdir=tmp_path)


def test_no_credentials_fails_before_importing_kaggle(no_credentials: Path) -> None:
    imported_before = "kaggle" in sys.modules
    with pytest.raises(SourceError, match="No Kaggle credentials") as info:
        load_kaggle()
    message = str(info.value)
    assert "KAGGLE_USERNAME/KAGGLE_KEY" in message and "~/.kaggle/kaggle.json" in message
    assert "--source dir:PATH" in message and "--source synthetic" in message
    assert ("kaggle" in sys.modules) == imported_before
    with pytest.raises(SourceError, match="No Kaggle credentials"):
        load_source("kaggle", opportunities=None, seed=42)


def test_credentials_are_found_where_the_client_looks(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kaggle_credentials() is None
    assert kaggle_credentials({"KAGGLE_USERNAME": "u"}, no_credentials) is None
    env = {"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}
    assert kaggle_credentials(env, no_credentials) == "KAGGLE_USERNAME/KAGGLE_KEY"
    assert kaggle_credentials({"KAGGLE_API_TOKEN": "t"}, no_credentials) == "KAGGLE_API_TOKEN"
    config = no_credentials / ".kaggle" / "kaggle.json"
    config.parent.mkdir()
    config.write_text('{"username": "u", "key": "k"}')
    assert kaggle_credentials() == str(config)
    other = no_credentials / "elsewhere"
    other.mkdir()
    (other / "kaggle.json").write_text("{}")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(other))
    assert kaggle_credentials() == str(other / "kaggle.json")

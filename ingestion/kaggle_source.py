"""The real data: Kaggle dataset `innocentmfa/crm-sales-opportunities`, read as a CSV folder.

The `kaggle` package authenticates (and may exit) when it is imported, so it is imported only
inside the default downloader, after the credentials have been checked. The downloader is a
parameter so that tests inject one that writes CSV files and never reach the network.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from ingestion.csv_files import read_csv_folder
from ingestion.errors import SourceError, SourceUnavailable
from ingestion.source_data import SourceData
from ingestion.tables import CSV_FILES, SALES_PIPELINE

DATASET = "innocentmfa/crm-sales-opportunities"

Downloader = Callable[[str, Path], None]

WAYS_OUT = (
    "set KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json, "
    "or use `--source dir:PATH` / `--source synthetic`"
)


def kaggle_download(dataset: str, dest: Path) -> None:
    """Download and unzip `dataset` into `dest` with the official client."""
    from kaggle.api.kaggle_api_extended import KaggleApi  # authenticates on import

    api = KaggleApi()
    api.authenticate()
    api.dataset_download_files(dataset, path=str(dest), unzip=True, quiet=True)


def kaggle_credentials(
    env: Mapping[str, str] | None = None, home: Path | None = None
) -> str | None:
    """Where Kaggle credentials would come from, or None if there are none."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    folders = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    folders += [home / ".kaggle", xdg / "kaggle"]
    for folder in folders:
        for name in ("kaggle.json", "access_token"):
            if (folder / name).is_file():
                return str(folder / name)
    return None


def check_credentials() -> None:
    """A `SourceError` saying where to put them unless Kaggle credentials are configured."""
    if kaggle_credentials() is None:
        raise SourceError(f"No Kaggle credentials found: {WAYS_OUT}.")


def load_kaggle(
    *,
    dataset: str = DATASET,
    download: Downloader | None = None,
    workdir: Path | None = None,
) -> SourceData:
    """Download the dataset into a temporary folder and read it like `dir:PATH`."""
    if download is None:
        check_credentials()
        download = kaggle_download
    with tempfile.TemporaryDirectory(prefix="crm-kaggle-", dir=workdir) as tmp:
        dest = Path(tmp)
        try:
            download(dataset, dest)
        except SourceError:
            raise
        except (Exception, SystemExit) as exc:  # the client raises many types, or exits
            raise SourceUnavailable(
                f"Could not download Kaggle dataset {dataset}: {type(exc).__name__}: {exc}. "
                f"Check the network and credentials: {WAYS_OUT}."
            ) from exc
        data = read_csv_folder(_csv_folder(dest, dataset))
    data.source = "kaggle"
    return data


def _csv_folder(dest: Path, dataset: str) -> Path:
    """The folder of the download holding the CSV files (the archive may nest them)."""
    target = CSV_FILES[SALES_PIPELINE]
    if (dest / target).is_file():
        return dest
    found = sorted(dest.rglob(target))
    if not found:
        files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        raise SourceError(
            f"Kaggle dataset {dataset} downloaded without {target} (got: "
            f"{', '.join(files) or 'nothing'}). Has the dataset changed? Download it by hand "
            "and use `--source dir:PATH`, or use `--source synthetic`."
        )
    return found[0].parent

"""Time, always in UTC: every timestamp the platform stores or compares is timezone-aware UTC.

A naive datetime is read as UTC (that is how the data's dates are meant), an aware one is
converted. One helper, so the feature store, the scorer and the explorer agree on it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd


def utc(moment: datetime | pd.Timestamp | date | str | Any) -> datetime:
    """`moment` as an aware UTC datetime (naive values are taken to be UTC already)."""
    if isinstance(moment, datetime):  # the scorer's hot path: no pandas round trip
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


def now() -> datetime:
    return datetime.now(UTC)


def today() -> str:
    """Today's date in UTC, as a snapshot name (YYYY-MM-DD)."""
    return now().date().isoformat()

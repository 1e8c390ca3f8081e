"""Known spelling variants in the source data and the canonical value each one maps to.

One explicit, versioned mapping: a value is only rewritten if it is listed here, every rewrite is
reported as a warning with its count, and bumping `ALIASES_VERSION` whenever this changes lets a
report say which mapping produced a validated snapshot. Anything not listed that fails a
reference check stays an error.
"""

from __future__ import annotations

from collections.abc import Mapping

ALIASES_VERSION = "2026.11.1"

# (table, column) -> {value as found in the source: canonical value}
ALIASES: Mapping[tuple[str, str], Mapping[str, str]] = {
    ("sales_pipeline", "product"): {"GTXPro": "GTX Pro"},
    ("accounts", "sector"): {"technolgy": "technology"},
    ("accounts", "office_location"): {"Philipines": "Philippines"},
}


def aliases_for(table: str) -> dict[str, Mapping[str, str]]:
    """Column -> mapping of the aliases that apply to `table`."""
    return {column: mapping for (name, column), mapping in ALIASES.items() if name == table}

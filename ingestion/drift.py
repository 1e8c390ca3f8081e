"""A drift the synthetic generator plants from a given day, to test monitoring end to end.

Monitoring needs data that changes the way real CRM data does: the product mix moves, a sector
stops buying, a team leaves. `Drift` names which of these happen to the deals engaged on or after
`start`; everything engaged earlier is byte-identical to the undrifted history of the same seed,
so snapshots taken before `start` raise no alarm and later ones do.

    product_mix   a premium launch: GTK 500 goes from 0.4% to ~80% of new deals
                  (`PRODUCT_SHARE_FACTOR`): covariate drift in the product and price features.
    sector_win    retail accounts (the largest sector) win much less (`SECTOR_LOGIT_SHIFT` on the
                  true logit): concept drift, seen in realised performance once deals close.
    team_leaves   the agents of manager `LEAVING_MANAGER` take no new deals; the others take them
                  over: drift in the agent mix and the agents' workload features.

Spelled in a source spec as `synthetic:drift=2017-08-01` (all three) or
`synthetic:drift=2017-08-01/product_mix+team_leaves` (ingestion.sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

PRODUCT_MIX = "product_mix"
SECTOR_WIN = "sector_win"
TEAM_LEAVES = "team_leaves"
KINDS = (PRODUCT_MIX, SECTOR_WIN, TEAM_LEAVES)

PRODUCT_SHARE_FACTOR = {"GTK 500": 1000.0}
DRIFTED_SECTOR = "retail"
SECTOR_LOGIT_SHIFT = -1.5
LEAVING_MANAGER = "Cara Losch"


class DriftSpecError(ValueError):
    """A drift spec that cannot be read; the message says how to write one."""


@dataclass(frozen=True)
class Drift:
    """Which drifts hit the deals engaged on or after `start`."""

    start: date
    kinds: frozenset[str] = field(default_factory=lambda: frozenset(KINDS))

    @classmethod
    def parse(cls, spec: str) -> Drift:
        """`2017-08-01` (every kind) or `2017-08-01/product_mix+sector_win`."""
        day, _, kinds = spec.strip().partition("/")
        try:
            start = date.fromisoformat(day.strip())
        except ValueError:
            raise DriftSpecError(
                f"drift start {day.strip()!r} is not a date: write drift=YYYY-MM-DD"
                f"[/kind+kind], kinds {', '.join(KINDS)}."
            ) from None
        chosen = frozenset(k.strip() for k in kinds.split("+") if k.strip()) or frozenset(KINDS)
        unknown = sorted(chosen - set(KINDS))
        if unknown:
            raise DriftSpecError(
                f"unknown drift kind {', '.join(unknown)}: use any of {', '.join(KINDS)} "
                "joined by `+`."
            )
        return cls(start, chosen)

    def __str__(self) -> str:
        kinds = "" if self.kinds == frozenset(KINDS) else "/" + "+".join(sorted(self.kinds))
        return f"{self.start.isoformat()}{kinds}"

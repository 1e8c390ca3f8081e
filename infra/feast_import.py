"""Feast without typeguard's run-time type checks: ~5 s off every process that imports Feast.

Feast decorates its classes and functions with typeguard's `@typechecked`, which re-parses and
recompiles the source of every decorated class each time Feast is imported: most of the 7-10 s
that `import feast` took here, paid by every `crm` command, Prefect flow run, batch-scoring Ray
worker and benchmark step. typeguard itself turns the decorator into a no-op under `python -O`
("checks ... not meant to be run in production"); importing this module does the same for that
decorator alone (our asserts stay on). Feast's behaviour is unchanged for correct calls; a
wrongly typed argument to a Feast constructor is no longer refused by typeguard (mypy checks
ours).

Every package of ours that imports Feast imports this module first, in its `__init__`
(`tests/unit/test_feast_import.py` holds each one to it). It must run before Feast's modules are
imported: a Feast module imported earlier keeps its checks (harmless, only slower).
"""

from __future__ import annotations

from typing import Any

import typeguard


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """`typeguard.typechecked` as it is under `python -O`: the target itself."""
    return _unchecked if target is None else target


typeguard.typechecked = _unchecked

"""An empty BentoML endpoint: the framework's own ceiling on this machine (bench only)."""

from __future__ import annotations

import bentoml


@bentoml.service(name="crm_bench_empty", workers=1, logging={"access": {"enabled": False}})
class Empty:
    @bentoml.api
    def ping(self, opportunity_id: str) -> dict[str, bool]:
        return {"ok": bool(opportunity_id)}

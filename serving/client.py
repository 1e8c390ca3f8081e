"""A small typed client of the scoring service, for the explorer, the tests and scripts.

    client = ScoringClient("http://127.0.0.1:3000", token=None)
    ok, reason = client.ready()
    score = client.score("01QZCHR4")          # -> Score (pydantic)
    scores = client.score_batch(["A", "B"])   # -> list[Score], same order
    what_if = client.score_features({"product_profile__sales_price": 550})

Every failure is a `ClientError`: `NotFound` (404: unknown or closed deal), `Unauthorized` (401),
`InvalidRequest` (422 or 413, `.fields` names the offending fields), `ServiceUnavailable` (503:
not ready, or the online store is down; also raised when the service cannot be reached), and
its subclass `Overloaded` (429: retry after `.retry_after` seconds). The message is the
service's own, which says what to do; `.request_id` is the id its log uses for the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from serving.schemas import MAX_BATCH, FeatureValue, ModelFeatures, Score

__all__ = [
    "ClientError",
    "InvalidRequest",
    "ModelFeatures",
    "NotFound",
    "Overloaded",
    "Score",
    "ScoringClient",
    "ServiceUnavailable",
    "Unauthorized",
]


class ClientError(RuntimeError):
    """Base of every error of `ScoringClient`; `status` is the HTTP status (0: no answer)."""

    def __init__(
        self, message: str, status: int = 0, detail: Any = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.request_id = request_id


class NotFound(ClientError):
    """404: unknown opportunity, or already closed."""


class Unauthorized(ClientError):
    """401: the service wants a bearer token (CRM_API_TOKEN) and got none or a wrong one."""


class InvalidRequest(ClientError):
    """422 (or another 4xx): the body was refused; `fields` lists what to fix."""

    @property
    def fields(self) -> list[str]:
        detail = self.detail if isinstance(self.detail, list) else []
        return [d["field"] if isinstance(d, dict) and "field" in d else str(d) for d in detail]


class ServiceUnavailable(ClientError):
    """503, a 5xx, or no answer at all: not ready, store down, or service not running."""


class Overloaded(ServiceUnavailable):
    """429: too many requests in flight at the service; retry after `retry_after` seconds."""

    retry_after: float = 1.0


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text.strip()}
    return body if isinstance(body, dict) else {"error": str(body)}


def _error_for(response: httpx.Response) -> ClientError:
    body = _body(response)
    message = str(body.get("error") or body.get("detail") or response.reason_phrase)
    detail = body.get("detail")
    status = response.status_code
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    if status == 404:
        return NotFound(message, status, detail, request_id)
    if status in (401, 403):
        return Unauthorized(message, status, detail, request_id)
    if status == 429:
        overloaded = Overloaded(message, status, detail, request_id)
        retry = response.headers.get("retry-after", "")
        if retry.isdigit():
            overloaded.retry_after = float(retry)
        return overloaded
    if status >= 500:
        return ServiceUnavailable(message, status, detail, request_id)
    return InvalidRequest(message, status, detail, request_id)


class ScoringClient:
    """Synchronous, thread-safe (httpx connection pool); use as a context manager or `close()`."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 5.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------------------ calls
    def ready(self) -> tuple[bool, str]:
        """(True, "ready") or (False, why): "not ready" (the service's log says why), or the
        network error."""
        try:
            response = self._http.get("/readyz")
        except httpx.HTTPError as exc:
            return False, f"cannot reach {self.base_url}: {exc}"
        if response.status_code == 200:
            return True, "ready"
        return False, str(_body(response).get("error") or response.reason_phrase)

    def score(self, opportunity_id: str, as_of: datetime | None = None, top_k: int = 5) -> Score:
        body: dict[str, Any] = {"opportunity_id": opportunity_id, "top_k": top_k}
        if as_of is not None:
            body["as_of"] = as_of.isoformat()
        return Score.model_validate(self._post("/score", body))

    def score_batch(
        self, ids: Sequence[str], as_of: datetime | None = None, top_k: int = 5
    ) -> list[Score]:
        """Scores in the order of `ids`; split into requests of at most 1,000 ids."""
        scores: list[Score] = []
        for start in range(0, len(ids), MAX_BATCH):
            body: dict[str, Any] = {"opportunity_ids": list(ids[start : start + MAX_BATCH])}
            body["top_k"] = top_k
            if as_of is not None:
                body["as_of"] = as_of.isoformat()
            data = self._post("/score_batch", body)
            scores += [Score.model_validate(s) for s in data["scores"]]
        return scores

    def score_features(
        self,
        features: Mapping[str, FeatureValue],
        list_price: float | None = None,
        top_k: int = 5,
    ) -> Score:
        body: dict[str, Any] = {"features": dict(features), "top_k": top_k}
        if list_price is not None:
            body["list_price"] = list_price
        return Score.model_validate(self._post("/score_features", body))

    def model_features(self) -> ModelFeatures:
        """The champion's feature names and category levels (what score_features accepts)."""
        return ModelFeatures.model_validate(self._request("GET", "/model_features"))

    # ------------------------------------------------------------------------------ plumbing
    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"Cannot reach {self.base_url}{path}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_for(response)
        return response.json()

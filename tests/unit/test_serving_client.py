"""The client turns each status of the service into its typed exception, keeping the message."""

from __future__ import annotations

import httpx
import pytest

from serving.client import (
    ClientError,
    InvalidRequest,
    NotFound,
    ScoringClient,
    ServiceUnavailable,
    Unauthorized,
    _error_for,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, NotFound), (401, Unauthorized), (422, InvalidRequest), (503, ServiceUnavailable)],
)
def test_status_maps_to_a_typed_error_with_the_services_message(status: int, kind: type) -> None:
    body = {"error": f"message for {status}", "detail": [{"field": "opportunity_id"}]}
    error = _error_for(httpx.Response(status, json=body))
    assert isinstance(error, kind) and isinstance(error, ClientError)
    assert str(error) == f"message for {status}" and error.status == status


def test_invalid_request_lists_the_fields() -> None:
    body = {"error": "Invalid request", "detail": [{"field": "as_of", "message": "bad"}]}
    error = _error_for(httpx.Response(422, json=body))
    assert isinstance(error, InvalidRequest) and error.fields == ["as_of"]


def test_plain_text_bodies_are_kept() -> None:
    error = _error_for(httpx.Response(503, text="Not ready: no champion"))
    assert isinstance(error, ServiceUnavailable) and "no champion" in str(error)


def test_an_unreachable_service_is_unavailable_not_a_traceback() -> None:
    with ScoringClient("http://127.0.0.1:9", timeout=0.5) as client:
        ready, reason = client.ready()
        assert not ready and "cannot reach" in reason
        with pytest.raises(ServiceUnavailable, match="Cannot reach"):
            client.score("X")

"""The client turns each status of the service into its typed exception, keeping the message."""

from __future__ import annotations

import httpx
import pytest

from serving.client import (
    ClientError,
    InvalidRequest,
    NotFound,
    Overloaded,
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


def test_429_is_an_overloaded_service_with_its_retry_after_and_request_id() -> None:
    response = httpx.Response(
        429,
        json={"error": "Too many requests in flight (64)", "request_id": "abc"},
        headers={"Retry-After": "2", "X-Request-ID": "abc"},
    )
    error = _error_for(response)
    assert isinstance(error, Overloaded) and isinstance(error, ServiceUnavailable)
    assert error.retry_after == 2.0 and error.request_id == "abc" and error.status == 429


def test_ready_reports_the_public_reason() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "not ready", "request_id": "r1"})

    with ScoringClient("http://scorer") as client:
        client._http = httpx.Client(
            base_url="http://scorer", transport=httpx.MockTransport(handler)
        )
        assert client.ready() == (False, "not ready")

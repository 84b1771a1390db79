from __future__ import annotations

import pytest
from hybridex_client import (
    ApiError,
    AuthError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RejectedError,
    UnavailableError,
    error_from,
)

pytestmark = pytest.mark.unit


def _body(code: str) -> dict[str, object]:
    return {"error": {"code": code, "message": f"about {code}"}}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "INVALID_TICK", InvalidRequestError),
        (401, "SESSION_REQUIRED", AuthError),
        (403, "ACCOUNT_EXITING", AuthError),
        (404, "ORDER_NOT_FOUND", NotFoundError),
        (409, "NONCE_REUSED", ConflictError),
        (422, "INSUFFICIENT_BALANCE", RejectedError),
        (429, "RATE_LIMITED", RateLimitedError),
        (503, "PERSISTENCE_LAGGING", UnavailableError),
    ],
)
def test_codes_map_to_their_family(status: int, code: str, cls: type[ApiError]) -> None:
    err = error_from(status, _body(code))
    assert type(err) is cls
    assert (err.code, err.status, err.message) == (code, status, f"about {code}")


def test_an_unknown_code_falls_back_to_its_status() -> None:
    err = error_from(422, _body("SOMETHING_NEW"))
    assert isinstance(err, RejectedError)
    assert err.code == "SOMETHING_NEW"


def test_a_body_not_of_the_api_shape_names_the_status() -> None:
    err = error_from(502, "<html>bad gateway</html>")
    assert isinstance(err, UnavailableError)
    assert (err.code, err.status) == ("HTTP_ERROR", 502)


def test_retry_after_is_read() -> None:
    err = error_from(429, _body("RATE_LIMITED"), {"retry-after": "3"})
    assert err.retry_after == 3.0

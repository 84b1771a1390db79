"""Private reads behind the trader's signed `Session` (docs/api.md "Private data").

A trader's open orders, fills, balances, deposits and withdrawals are not public on chain,
so reading them takes either the trader's EIP-712 `Session` — `{trader, scope: "read",
expiry}` signed by the trader — sent as `X-Hybridex-Session: base64url(JSON {"session": {…},
"signature": "0x…"})`, or the operator's bearer token. The session is a bearer credential
until its expiry, so its lifetime is capped (`HYBRIDEX_API_SESSION_MAX_S`). Verified tokens
are cached, so a client polling with the same token costs one signature recovery, not one per
request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import orjson
from starlette.requests import HTTPConnection

from backend.domain.errors import DexError, ErrorCode
from backend.eip712.domain import Domain
from backend.eip712.messages import Session
from backend.eip712.parsing import message_to_json, parse_session, parse_signature
from backend.eip712.recover import verify
from backend.eip712.signing import sign

HEADER: Final = "x-hybridex-session"
MAX_TOKEN_CHARS: Final = 1024
CACHE_SIZE: Final = 10_000


def encode_token(session: Session, signature: bytes) -> str:
    """The header value for a signed session (clients, tests)."""
    body = orjson.dumps({"session": message_to_json(session), "signature": "0x" + signature.hex()})
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def session_token(
    trader: str, private_key: str | bytes, domain: Domain, *, lifetime_s: int = 3_600
) -> str:
    """Signs a read session for `trader` valid `lifetime_s` from now (clients, tests)."""
    session = Session(trader=trader, scope="read", expiry=int(time.time()) + lifetime_s)
    return encode_token(session, sign(session, domain, private_key).to_bytes())


class SessionVerifier:
    """Decodes and verifies session tokens; remembers verified ones until they expire."""

    def __init__(
        self, domain: Domain, *, max_lifetime_s: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.domain = domain
        self.max_lifetime_s = max_lifetime_s
        self.clock = clock
        self._verified: OrderedDict[str, Session] = OrderedDict()

    def trader(self, token: str) -> str:
        """The trader a token speaks for; raises SESSION_INVALID (or INVALID_SIGNATURE)."""
        now = int(self.clock())
        session = self._verified.get(token)
        if session is None:
            session = self._verify(token, now)
            self._verified[token] = session
            if len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
        if session.expiry <= now:
            self._verified.pop(token, None)
            raise DexError(
                ErrorCode.SESSION_INVALID,
                f"the session expired at {session.expiry} (now {now}): sign a new one",
                expiry=str(session.expiry),
            )
        return session.trader

    def _verify(self, token: str, now: int) -> Session:
        if len(token) > MAX_TOKEN_CHARS:
            raise DexError(ErrorCode.SESSION_INVALID, "the session token is too long")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            doc = orjson.loads(raw)
        except (binascii.Error, ValueError):
            raise DexError(
                ErrorCode.SESSION_INVALID,
                f"{HEADER} must be base64url of a JSON object {{session, signature}}",
            ) from None
        if not isinstance(doc, dict) or set(doc) != {"session", "signature"}:
            raise DexError(
                ErrorCode.SESSION_INVALID,
                f"{HEADER} must hold exactly {{session, signature}}",
            )
        session = parse_session(doc["session"])
        signature = parse_signature(doc["signature"], "signature")
        if session.expiry > now + self.max_lifetime_s:
            raise DexError(
                ErrorCode.SESSION_INVALID,
                f"the session's expiry is more than {self.max_lifetime_s} s away: sign one "
                "with a nearer expiry",
                max_lifetime_s=str(self.max_lifetime_s),
            )
        verify(session, signature, self.domain)  # INVALID_SIGNATURE names the signer
        return session


def require_trader(conn: HTTPConnection, trader: str) -> None:
    """Admits a private read of `trader`'s data, or raises SESSION_REQUIRED / _INVALID /
    _FORBIDDEN. The operator's bearer token (`HYBRIDEX_ADMIN_TOKEN`) reads any trader."""
    check_trader(
        conn.app.state.ctx,  # the app's ApiContext (backend.api.deps imports this module)
        trader,
        token=conn.headers.get(HEADER),
        authorization=conn.headers.get("authorization"),
    )


def check_trader(c: Any, trader: str, *, token: str | None, authorization: str | None) -> None:
    """`require_trader` for what a request or a WebSocket connection presented."""
    admin = c.settings.admin_token
    if admin is not None and authorization is not None:
        expected = f"Bearer {admin.get_secret_value()}"
        if hmac.compare_digest(authorization.encode(), expected.encode()):
            return
    if token is None:
        raise DexError(
            ErrorCode.SESSION_REQUIRED,
            f"{trader}'s orders, fills and balances are private: send the trader's signed "
            f'Session (EIP-712, scope "read") in {HEADER} (docs/api.md)',
            trader=trader,
        )
    signer = c.read_sessions.trader(token)
    if signer != trader:
        raise DexError(
            ErrorCode.SESSION_FORBIDDEN,
            f"the session is {signer}'s; it does not read {trader}'s data",
            trader=trader,
        )

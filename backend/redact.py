"""Credentials out of URLs before they reach a log line or the terminal.

RPC providers put the API key in the path (`/v3/<key>`, `/v2/<key>`) or the query
(`?apikey=`); database, Redis and broker URLs carry a password in the userinfo. Every URL that
is logged or printed goes through `redact_url` (or `redact_text` for messages that embed one).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# Query parameters whose value is a credential (compared lower-case, `-` read as `_`).
_SECRET_PARAMS = frozenset(
    {
        "key", "apikey", "api_key", "token", "access_token", "auth", "auth_token", "secret",
        "password", "pass", "pwd", "sig", "signature", "x_api_key", "projectid", "project_id",
    }
)  # fmt: skip
# A path segment that looks like a key: long, of key characters, with letters and digits mixed.
_KEYLIKE = re.compile(r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_\-]{16,}$")
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """`url` with its userinfo, key-like path segments and secret query values replaced."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.netloc:
        return url if "@" not in url else REDACTED
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        user = quote(parts.username or "", safe="")
        # A user name alone is often the key itself (https://KEY@host); a password always is.
        if parts.password is not None and user and not _KEYLIKE.match(user):
            netloc = f"{user}:{REDACTED}@{netloc}"
        else:
            netloc = f"{REDACTED}@{netloc}"
    path = "/".join(REDACTED if _KEYLIKE.match(seg) else seg for seg in parts.path.split("/"))
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [
                (k, REDACTED if k.lower().replace("-", "_") in _SECRET_PARAMS else v)
                for k, v in pairs
            ],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def redact_text(text: str) -> str:
    """`text` (an error message, say) with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)

"""hybridex-client: the Python SDK of the Hybridex API (docs/client.md)."""

from hybridex_client.book import LocalBook
from hybridex_client.client import Client
from hybridex_client.entry import OrderEntry
from hybridex_client.errors import (
    ApiError,
    AuthError,
    ConflictError,
    HybridexError,
    InvalidRequestError,
    NotFoundError,
    PendingError,
    RateLimitedError,
    RejectedError,
    UnavailableError,
    error_from,
)
from hybridex_client.feed import (
    Authenticated,
    BookReset,
    Event,
    Feed,
    Resync,
    ServerError,
    Ticker,
    Update,
)
from hybridex_client.models import BUY, FOK, GTC, IOC, POST_ONLY, PRICE_SCALE, SELL, ItemResult
from hybridex_client.signing import NonceSource, Signer
from hybridex_client.stream import Reconnected, Stream

__all__ = [
    "BUY", "FOK", "GTC", "IOC", "POST_ONLY", "PRICE_SCALE", "SELL",
    "ApiError", "AuthError", "Authenticated", "BookReset", "Client", "ConflictError", "Event",
    "Feed", "HybridexError", "InvalidRequestError", "ItemResult", "LocalBook", "NonceSource",
    "NotFoundError", "OrderEntry",
    "PendingError", "RateLimitedError", "Reconnected", "RejectedError", "Resync", "ServerError",
    "Signer", "Stream", "Ticker", "UnavailableError", "Update", "error_from",
]  # fmt: skip

"""EIP-712 messages of Hybridex (SPEC §3): types, domain, fast hashing and dev signing.

Module boundaries: `messages` (dataclasses + published type definitions), `domain`
(domain and separator), `hashing` (fast digests and the typed-data dict for wallets),
`signing` (test/dev signers). Strict request parsing and signature recovery live beside
these, never inside them.
"""

from backend.eip712.domain import Domain
from backend.eip712.messages import (
    Cancel,
    CancelAll,
    Message,
    Order,
    ScheduleCancel,
    Withdrawal,
)

__all__ = ["Cancel", "CancelAll", "Domain", "Message", "Order", "ScheduleCancel", "Withdrawal"]

"""Every table, grouped by the one process that writes it (CONVENTIONS "The shape of the house").

Importing this package registers all tables on `Base.metadata` (Alembic's target).
"""

from backend.db.models.engine import (
    Balance,
    EngineCursor,
    EngineJournal,
    EngineSnapshot,
    Fill,
    Order,
    SignedCancel,
    TraderExit,
    Withdrawal,
)
from backend.db.models.indexer import ChainBalance, ChainBlock, ChainEvent, Deposit, IndexerCursor
from backend.db.models.reconcile import ReconciliationRun
from backend.db.models.reference import Market, Token
from backend.db.models.settlement import (
    BatchCancel,
    BatchKill,
    FillRevert,
    FillSettlement,
    SettlementBatch,
    SettlementTransaction,
    WithdrawalRelease,
    WithdrawalSettlement,
)
from backend.db.models.stream import StreamOutbox

__all__ = [
    "Balance",
    "BatchCancel",
    "BatchKill",
    "ChainBalance",
    "ChainBlock",
    "ChainEvent",
    "Deposit",
    "EngineCursor",
    "EngineJournal",
    "EngineSnapshot",
    "Fill",
    "FillRevert",
    "FillSettlement",
    "IndexerCursor",
    "Market",
    "Order",
    "ReconciliationRun",
    "SettlementBatch",
    "SettlementTransaction",
    "SignedCancel",
    "StreamOutbox",
    "Token",
    "TraderExit",
    "Withdrawal",
    "WithdrawalRelease",
    "WithdrawalSettlement",
]

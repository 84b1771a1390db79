"""Settlement worker: engine fills → sequential `settleBatch` transactions, exactly once.

Modules: `batcher` (claim fills into batches), `bisect` (isolate failing fills), `sender`
(simulate, sign, store, broadcast), `nonces` / `fees` (operator nonce and EIP-1559 pricing),
`monitor` (receipts, confirmations, stuck and reorged transactions), `withdrawals`, `tasks`
(Celery), `celery_app`. Design: docs/settlement.md.
"""

"""Three-way reconciliation: the engine's ledger (as the database holds it) against the chain.

`reads` takes one consistent read of the database, `chain` reads the Exchange and the tokens
at one block, `compare` explains every difference by what is in flight or reports it.
`hybridex reconcile` runs the three (docs/runbook.md, "Reconciliation").
"""

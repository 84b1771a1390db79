"""The event stream for downstream systems: a transactional outbox, written by each process in
the same transaction as its own rows, and `hybridex relay`, which publishes it to a broker."""

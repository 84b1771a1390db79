"""Hybridex: a non-custodial hybrid DEX backend."""

import os
from importlib.util import find_spec

__version__ = "0.1.0"

# eth-hash picks its Keccak backend at its first hash, pycryptodome before pysha3 when both
# are installed. pysha3's C call costs ~2 µs per hash against ~13 µs through pycryptodome's
# cffi layer, and every signature check hashes three times, every indexed event at least once.
# Set before anything hashes (every entry point imports `backend` first); the operator's
# ETH_HASH_BACKEND, if set, wins.
if find_spec("sha3") is not None:
    os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

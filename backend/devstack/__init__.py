"""The embedded development stack behind `hybridex dev` (never used in production)."""

"""shadowswap: online schema changes through a shadow table, dual-write triggers and an atomic swap."""

__version__ = "0.1.0"

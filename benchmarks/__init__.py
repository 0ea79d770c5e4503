"""Benchmarks under write load: shadowswap against the raw copy, the blocking ALTER and
pt-online-schema-change, on one table and one machine, in one invocation.

``python -m benchmarks --dialect postgresql --rows 1000000``; see ``python -m benchmarks --help``
and docs/performance.md.
"""

"""Benchmarks against pm4py; each writes its table to docs/perf/<part>.md (see bench.assemble)."""

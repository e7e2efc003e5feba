"""Benchmarks against the sandbox (issue 5): API calls, rate-limited write-back, throughput, memory, ingest."""

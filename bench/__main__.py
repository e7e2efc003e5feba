"""`python -m bench`: run the benchmarks and write BENCHMARKS.md (see bench/run.py for the options)."""

from __future__ import annotations

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())

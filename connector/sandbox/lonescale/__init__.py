"""The LoneScale API emulator: validation, deterministic fake enrichment, webhook delivery (README.md)."""

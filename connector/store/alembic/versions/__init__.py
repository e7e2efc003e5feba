"""One file per schema revision. Append, never edit: a released revision is history. Each states its own DDL
with the columns as they were then, and never imports connector.store.schema (today's tables)."""

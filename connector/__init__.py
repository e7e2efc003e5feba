"""lonescale-sync: keeps CRM contacts enriched through LoneScale."""

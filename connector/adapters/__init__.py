"""CRM adapters: the only modules that import a CRM SDK."""

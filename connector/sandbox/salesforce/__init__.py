"""The salesforce emulator."""

"""Local emulators of LoneScale, HubSpot CRM v3 and Salesforce REST, served over real sockets.

`connector.sandbox.runner.Sandbox` starts all three. Product code never imports this package
(tests/test_architecture.py), except the CLI's `demo` and `sandbox` commands.
"""

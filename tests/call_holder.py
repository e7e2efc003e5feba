"""A second process calling one CRM instance through the connector's adapter, for tests/test_call_holders.py.

    python -m tests.call_holder hubspot URL TOKEN
    python -m tests.call_holder salesforce URL CLIENT_ID CLIENT_SECRET

It makes one call (a Salesforce login happens there, outside what the test watches), prints `ready`, makes
one more call when a line arrives on stdin, and prints `done`.
"""

from __future__ import annotations

import sys

from connector.adapters.hubspot import HubSpotAdapter
from connector.adapters.salesforce import SalesforceAdapter, SalesforceCredentials


def adapter(crm: str, url: str, *secrets: str) -> HubSpotAdapter | SalesforceAdapter:
    if crm == "hubspot":
        return HubSpotAdapter("holder", secrets[0], base_url=url)
    return SalesforceAdapter("holder", SalesforceCredentials(secrets[0], secrets[1]), instance_url=url)


def main(argv: list[str]) -> None:
    crm = adapter(*argv)
    crm.check()
    print("ready", flush=True)
    sys.stdin.readline()
    crm.check()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

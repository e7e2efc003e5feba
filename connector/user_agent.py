"""The User-Agent every outgoing API call carries: the connector, its version, and which process sent it.

CRM admins read it in their API logs (Salesforce's Event Monitoring, HubSpot's private-app call log) to tell
our calls from other integrations', and, with several worker processes, which host and process made a call.
The emulators read it as the holder of a call in flight: two processes at once on one CRM instance is what
the cluster's per-instance lock promises never happens (docs/architecture.md).
"""

from __future__ import annotations

import os
import socket

from connector import __version__

PRODUCT = "lonescale-sync"


def user_agent(sdk: str = "") -> str:
    """`lonescale-sync/<version> (<hostname>; pid <pid>) <sdk>`; the SDK's own User-Agent stays at the end,
    as vendors' support asks for it. The pid is read here, when a client is built: each process builds its
    own clients (nothing forks with one), so the pid is that of the process calling through it."""
    own = f"{PRODUCT}/{__version__} ({socket.gethostname()}; pid {os.getpid()})"
    return f"{own} {sdk}".strip()

"""Fixtures shared by the emulators' own tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Served


@pytest.fixture(scope="module")
def _client(_lonescale_server: Served) -> Iterator[httpx.Client]:
    """One keep-alive client per module, authenticated with the key the LoneScale emulator accepts."""
    key = _lonescale_server.emulator.api_key
    with httpx.Client(base_url=_lonescale_server.url, headers={"x-api-key": key}, timeout=5) as client:
        yield client

"""Pacing at the portal's own limit, as the config says it (`[instances.hubspot] requests_per_10s`): calls
made two at a time across the turn of HubSpot's rolling window meet no 429 at the limit, and a setting above
what the portal allows meets them, which is how we know the setting is what paces."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from connector.config import load_config
from connector.sandbox import credentials
from connector.starter import MAPPINGS
from connector.wiring import Instance, build_instance
from tests.conftest import Served


def _instance_paced_at(tmp_path: Path, served: Served, requests_per_10s: int) -> Instance:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[lonescale]
api_key_env = "LS_KEY"

[[instances]]
name = "acme-hs"
crm = "hubspot"
mapping = "{MAPPINGS / "hubspot-contacts.toml"}"

[instances.hubspot]
base_url = "{served.url}"
access_token_env = "HS_TOKEN"
requests_per_10s = {requests_per_10s}
"""
    )
    loaded = load_config(config, env={"LS_KEY": "ls_key_12345678", "HS_TOKEN": credentials.HUBSPOT_TOKEN})
    return build_instance(loaded, loaded.settings.instances[0])


def _calls(instance: Instance, count: int) -> None:
    """`count` cheap calls (the access check), two in flight at once as the write-back makes them."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: instance.adapter.check(), range(count)))


def test_a_professional_portal_at_190_is_paced_at_190_without_a_429(
    tmp_path: Path, hubspot_sandbox: Served
) -> None:
    hubspot_sandbox.control.configure(ten_secondly_limit=190)
    instance = _instance_paced_at(tmp_path, hubspot_sandbox, 190)
    hubspot_sandbox.control.clear_stats()

    _calls(instance, 200)  # past the first window: the last ten wait for it to turn

    assert hubspot_sandbox.control.count(status=200) == 200
    assert hubspot_sandbox.control.count(status=429) == 0


def test_a_setting_above_the_portals_limit_meets_429s_so_the_setting_is_what_paces(
    tmp_path: Path, hubspot_sandbox: Served
) -> None:
    hubspot_sandbox.control.configure(
        ten_secondly_limit=100
    )  # a Starter portal, configured as a Professional
    instance = _instance_paced_at(tmp_path, hubspot_sandbox, 190)
    hubspot_sandbox.control.clear_stats()

    _calls(instance, 110)

    assert hubspot_sandbox.control.count(status=200) == 110, "each refused call waited and went again"
    assert hubspot_sandbox.control.count(status=429) >= 1

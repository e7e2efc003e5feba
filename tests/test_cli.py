"""The command line as a user meets it: help, the sandbox command, the demo."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from click.testing import CliRunner

from connector.cli import main

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_KEYS = [
    "hubspot", "salesforce", "lonescale", "lonescale_api_key", "hubspot_token",
    "salesforce_client_id", "salesforce_client_secret", "salesforce_username", "salesforce_private_key_path",
    "salesforce_refresh_token",
]  # fmt: skip


def test_help_names_every_command_and_what_it_does() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "sandbox" in result.output and "demo" in result.output
    sandbox_help = CliRunner().invoke(main, ["sandbox", "--help"])
    for option in (
        "--contacts",
        "--seed",
        "--hubspot-port",
        "--salesforce-port",
        "--lonescale-port",
        "--relaxed",
    ):
        assert option in sandbox_help.output


def test_sandbox_command_prints_urls_and_credentials_then_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "sandbox", "--contacts", "1000", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in EXPECTED_KEYS]
        values = dict(line.split("=", 1) for line in lines)
        assert list(values) == EXPECTED_KEYS
        for name in ("hubspot", "salesforce", "lonescale"):
            assert values[name].startswith("http://127.0.0.1:")
            assert httpx.get(f"{values[name]}/__sandbox/stats", timeout=5).status_code == 200
        listed = httpx.post(
            f"{values['hubspot']}/crm/v3/objects/contacts/search",
            json={"limit": 1},
            headers={"Authorization": f"Bearer {values['hubspot_token']}"},
            timeout=5,
        )
        assert listed.json()["total"] == 1000
        users = httpx.get(f"{values['lonescale']}/users", headers={"x-api-key": values["lonescale_api_key"]})
        assert users.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sandbox_command_says_so_when_a_port_is_taken() -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "sandbox", "--contacts", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        port = first.stdout.readline().strip().rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "connector.cli", "sandbox", "--hubspot-port", port],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode != 0
        assert "hubspot" in second.stderr and port in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=15)


def test_demo_runs_a_full_cycle_on_both_crms_and_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "demo.db").write_text("a previous demo's store")  # replaced: its cursors would send nothing
    result = CliRunner().invoke(main, ["demo", "--contacts", "60", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "demo ok: both CRMs enriched; the second sync sent nothing" in result.output
    config = tmp_path.resolve() / "demo.toml"
    (hint,) = [line.split() for line in result.output.splitlines() if "status --serve --config" in line]
    assert hint[1:] == ["status", "--serve", "--config", str(config)], "it says how to see it"
    assert shutil.which(hint[0]), f"{hint[0]!r} can be typed as shown: on PATH, or the path of the program"
    shown = CliRunner().invoke(main, ["status", "--config", str(config)], env={"DEMO_LONESCALE_API_KEY": ""})
    assert shown.exit_code == 0 and "hubspot (hubspot, schedule every 15m)" in shown.output, shown.output
    rows = [
        line.split()
        for line in result.output.splitlines()
        if line.strip().startswith(("salesforce ", "hubspot "))
    ]
    assert len(rows) == 2
    for name, pulled, sent, _skipped, _found, written, *_rest, resent in rows:
        assert (int(pulled), int(resent)) == (60, 0) and int(sent) > 0 and int(written) > 0, name


def test_the_cluster_compose_file_runs_commands_that_exist_behind_a_balancer_naming_its_replicas() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.cluster.yaml").read_text())
    services = compose["services"]
    commands = {name: service["command"] for name, service in services.items() if "command" in service}
    assert [c[0] for c in commands.values()] == ["db", "run", "run", "work"]
    for command in commands.values():  # each is a command line this version accepts
        result = CliRunner().invoke(main, [*command[: 2 if command[0] == "db" else 1], "--help"])
        assert result.exit_code == 0, (command, result.output)
    caddy = (ROOT / "deploy" / "Caddyfile").read_text()
    replicas = [name for name, command in commands.items() if command[0] == "run"]
    assert all(f"{name}:8080" in caddy for name in replicas) and "health_uri /healthz" in caddy
    assert ".[postgres,cluster]" in (ROOT / "Dockerfile").read_text(), "the image can run a cluster"

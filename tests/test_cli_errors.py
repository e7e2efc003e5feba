"""A runtime failure the user can fix is one sentence with its fix and exit status 1, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner, Result

from connector.cli import main
from connector.redact import SecretRegistry
from tests.conftest import Served
from tests.test_commands import ENV, config, write_config


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=ENV)


def said_once(result: Result) -> str:
    """The one error line, after checking it came as a sentence and not as a traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.startswith("lonescale-sync: ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_a_store_folder_that_does_not_exist_is_said_with_its_fix(config: Path) -> None:
    config.write_text(
        config.read_text().replace('url = "sqlite:///state.db"', 'url = "sqlite:///gone/state.db"')
    )
    line = said_once(run("status", "--config", str(config)))
    assert (
        f"the store's folder {config.parent / 'gone'} does not exist: create it, or change [store] url"
        in line
    )


def test_a_postgresql_store_that_is_down_is_said_without_its_password(config: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://sync:s3cret-pw@127.0.0.1:{port}/lonescale"
    config.write_text(config.read_text().replace('url = "sqlite:///state.db"', f'url = "{url}"'))
    line = said_once(run("status", "--config", str(config)))
    assert f"cannot use the store at postgresql+psycopg://sync@127.0.0.1:{port}/lonescale" in line
    assert "is the database server running and reachable" in line and "s3cret-pw" not in line


def test_a_webhook_port_already_in_use_is_said_with_its_fix(config: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        text = config.read_text()
        listen = next(line for line in text.splitlines() if line.startswith("listen = "))
        config.write_text(text.replace(listen, f'listen = "127.0.0.1:{port}"'))
        line = said_once(run("sync", "sf", "--config", str(config), "--wait"))
    assert f"the webhook server cannot listen on 127.0.0.1:{port}: the address is already in use" in line
    assert "set [webhook] listen to another host:port" in line


def test_check_refuses_a_cron_line_the_scheduler_refuses_and_takes_those_it_runs(config: Path) -> None:
    text = config.read_text()
    config.write_text(text.replace('schedule = "every 1h"', 'schedule = "*/61 * * * *"'))
    result = run("check", "--config", str(config))
    assert result.exit_code == 2 and "the step value (61) is higher than the total range" in result.output
    for schedule in ("0 9 * * MON-FRI", "@hourly"):
        config.write_text(text.replace('schedule = "every 1h"', f'schedule = "{schedule}"'))
        assert "schedule" not in run("check", "--config", str(config)).output


def test_the_sandbox_says_which_port_it_could_not_take(salesforce_sandbox: Served, tmp_path: Path) -> None:
    port = salesforce_sandbox.url.rsplit(":", 1)[1]
    result = CliRunner().invoke(main, ["sandbox", "--salesforce-port", port, "--contacts", "0"])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output, result.output


__all__ = ["config"]  # the fixture, shared with the other command tests


def test_a_store_url_from_the_environment_is_used_and_its_password_never_printed(config: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config.write_text(config.read_text().replace('url = "sqlite:///state.db"', 'url_env = "STORE_URL"'))
    down = f"postgresql+psycopg://sync:pa%40ss-w0rd@127.0.0.1:{port}/lonescale"
    result = CliRunner().invoke(
        main, ["status", "--config", str(config), "--log-level", "debug"], env={**ENV, "STORE_URL": down}
    )
    line = said_once(result)
    assert f"cannot use the store at postgresql+psycopg://sync@127.0.0.1:{port}/lonescale" in line
    assert "pa%40ss-w0rd" not in result.output and "pa@ss-w0rd" not in result.output
    # A driver may print the password without the URL around it: that is masked too, encoded or not.
    assert SecretRegistry.scrub("auth failed for pa@ss-w0rd / pa%40ss-w0rd") == "auth failed for *** / ***"

    here = config.parent / "from-env.db"
    result = CliRunner().invoke(
        main, ["status", "--config", str(config)], env={**ENV, "STORE_URL": f"sqlite:///{here}"}
    )
    assert result.exit_code == 0, result.output
    assert here.is_file() and not (config.parent / "state.db").exists(), "the variable's URL, not the default"


def test_a_store_url_variable_that_is_not_set_is_a_config_problem(config: Path) -> None:
    config.write_text(config.read_text().replace('url = "sqlite:///state.db"', 'url_env = "STORE_URL"'))
    result = run("status", "--config", str(config))
    assert result.exit_code == 2
    assert "store.url_env: environment variable STORE_URL is not set" in result.output


def test_work_without_a_cluster_section_points_at_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9")

    result = run("work", "--config", str(config))

    assert result.exit_code == 2, result.output
    assert "`work` is for cluster mode" in result.output and "use `run` for one process" in result.output

"""Log lines an operator can follow: JSON on request, every line naming its instance, run and job, no secret."""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import hoist_global_options, main
from connector.logs import FIELDS, in_context, log_context, setup_logging
from tests.conftest import Served
from tests.support import SANDBOX_ENV, create_status_fields
from tests.test_commands import write_config


@pytest.fixture
def config(
    tmp_path: Path, lonescale_sandbox: Served, salesforce_sandbox: Served, hubspot_sandbox: Served
) -> Path:
    create_status_fields(salesforce_sandbox)
    lonescale_sandbox.control.configure(webhook_delay_seconds=0.2)
    return write_config(tmp_path, lonescale_sandbox.url, salesforce_sandbox.url, hubspot_sandbox.url)


def test_json_lines_name_the_instance_run_and_job_of_a_sync_and_never_a_secret(config: Path) -> None:
    # The global options after the command's name, as people type them.
    args = ["sync", "sf", "--config", str(config), "--wait", "--timeout", "60", "--log-format", "json",
            "--log-level", "debug"]  # fmt: skip
    result = CliRunner().invoke(main, args, env=SANDBOX_ENV)
    assert result.exit_code == 0, result.output
    run_id = int(re.search(r"\(run (\d+)\)", result.stdout).group(1))  # type: ignore[union-attr]

    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line is one JSON object
    assert lines and all(set(FIELDS) <= set(line) for line in lines)
    sent = [line for line in lines if re.match(r"sf: job \S+ sent", line["message"])]
    assert sent, "the debug lines of the jobs sent"
    for line in sent:
        assert line["instance"] == "sf" and line["run_id"] == run_id
        assert line["job_id"] == line["message"].split()[2], "the line names the job it speaks of"
    assert not [
        line
        for line in lines
        if line["logger"] in ("connector.sync", "connector.sender") and line["instance"] != "sf"
    ]
    for secret in SANDBOX_ENV.values():
        assert secret not in result.stderr


def test_text_lines_carry_the_context_before_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "text")
    log = logging.getLogger("connector.test")
    with log_context(instance="acme", run_id=7):
        log.info("inside")
        with log_context(job_id="j-1"):
            log.info("deeper")
    log.info("outside")
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("connector.test: [instance=acme run_id=7] inside")
    assert err[1].endswith("connector.test: [instance=acme run_id=7 job_id=j-1] deeper")
    assert err[2].endswith("connector.test: outside"), "the context ends with its block"


def test_a_thread_started_in_context_logs_in_it_and_a_plain_one_does_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("info", "json")
    log = logging.getLogger("connector.test")
    with log_context(instance="acme", run_id=3):
        inherited = threading.Thread(target=in_context(log.info), args=("from a worker",))
        plain = threading.Thread(target=log.info, args=("from a plain thread",))
    for thread in (inherited, plain):
        thread.start()
        thread.join()
    lines = {line["message"]: line for line in map(json.loads, capsys.readouterr().err.splitlines())}
    assert (lines["from a worker"]["instance"], lines["from a worker"]["run_id"]) == ("acme", 3)
    assert lines["from a plain thread"]["instance"] is None


def test_an_exception_is_one_json_line_with_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("connector.test").exception("it failed")
    (line,) = map(json.loads, capsys.readouterr().err.splitlines())
    assert line["message"] == "it failed" and "ValueError: boom" in line["error"]


def test_global_options_are_taken_wherever_they_stand() -> None:
    assert hoist_global_options(["status", "--log-level", "debug", "--config", "c.toml"]) == [
        "--log-level", "debug", "status", "--config", "c.toml",
    ]  # fmt: skip
    assert hoist_global_options(["status", "--log-format=json"]) == ["--log-format=json", "status"]
    assert hoist_global_options(["sync", "x", "--", "--log-level"]) == ["sync", "x", "--", "--log-level"]
    result = CliRunner().invoke(main, ["check", "--help", "--log-level", "debug"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_long_work_shows_its_progress_on_a_terminal_and_nothing_in_a_pipe(config: Path) -> None:
    args = ["sync", "sf", "--config", str(config), "--wait", "--timeout", "60"]
    on_terminal = CliRunner().invoke(main, args, env={**SANDBOX_ENV, "FORCE_COLOR": "1"})
    assert on_terminal.exit_code == 0, on_terminal.output
    assert re.search(r"sf: pulled \d+, sent \d+ in \d+ job\(s\)", on_terminal.stderr)
    assert re.search(r"sf: \d+ of \d+ job\(s\) await results; wrote \d+ field\(s\)", on_terminal.stderr)

    in_a_pipe = CliRunner().invoke(main, args, env=SANDBOX_ENV)  # CliRunner's streams are not terminals
    assert in_a_pipe.exit_code == 0
    assert not re.search(r"sf: pulled \d+, sent \d+ in", in_a_pipe.stderr)
    assert not re.search(r"job\(s\) await results; wrote", in_a_pipe.stderr)


def test_a_replay_and_a_retry_show_their_progress_on_a_terminal_and_nothing_in_a_pipe(
    config: Path, salesforce_sandbox: Served, lonescale_sandbox: Served
) -> None:
    email = "ada.progress@initech-example.com"
    salesforce_sandbox.control.seed(
        [{"sobject": "Contact", "FirstName": "Ada", "LastName": "Progress", "Email": email}]
    )
    lonescale_sandbox.control.seed(  # a title Salesforce refuses (too long): a rejected contact to retry
        [{"match": {"email": email}, "fields": {"jobTitle": "T" * 300, "phone": "+14155550123"}}]
    )
    synced = CliRunner().invoke(main, ["sync", "sf", "--config", str(config), "--wait", "--timeout", "60"],
                                env=SANDBOX_ENV)  # fmt: skip
    assert synced.exit_code == 0, synced.output
    replay = ["replay", "--since", "2000-01-01", "--config", str(config)]
    retry = ["retry-failed", "--config", str(config)]

    # The live line is redrawn a few times a second, so a short pass's steps may never be drawn; its last line,
    # what the pass came to, always is.
    written = r"sf: wrote \d+ field\(s\) on \d+ record\(s\); the CRM rejected"
    for args in (replay, retry):
        on_terminal = CliRunner().invoke(main, args, env={**SANDBOX_ENV, "FORCE_COLOR": "1"})
        assert on_terminal.exit_code == 0, on_terminal.output
        assert re.search(written, on_terminal.stderr), args[0]

        in_a_pipe = CliRunner().invoke(main, args, env=SANDBOX_ENV)
        assert in_a_pipe.exit_code == 0, in_a_pipe.output
        assert not re.search(written, in_a_pipe.stderr), args[0]

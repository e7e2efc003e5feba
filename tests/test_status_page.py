"""The status page after a real demo cycle, in a real headless Chromium (Debian's /usr/bin/chromium, driven by
playwright), and the status app over a real socket: its token, its JSON, its 404s, its loopback default."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from connector.cli import main
from connector.config import load_config
from connector.demo import run_demo
from connector.errors import ConfigError
from connector.serving import ThreadedServer
from connector.status_app import create_status_app
from connector.wiring import build_store

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).parent / "artifacts" / "status-page.png"
CHARTS = 4  # per instance: fill rate, credits per run, credits per filled field, contacts sent/skipped


@contextmanager
def _serve(config_path: Path, env: dict[str, str], routes: Sequence[BaseRoute] = ()) -> Iterator[str]:
    """The status app for this config, served from its store on an OS-chosen port; its base URL."""
    config = load_config(config_path, env=env, credentials=False)
    store = build_store(config)
    server = ThreadedServer(create_status_app(store, config, routes=routes), port=0, name="status")
    try:
        yield server.start()
    finally:
        server.stop()
        store.close()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo cycle on both sandbox instances, its store and config kept (as `make demo` keeps them)."""
    directory = tmp_path_factory.mktemp("demo")
    assert run_demo(contacts=20, seed=3, directory=directory) == 0
    return directory


@pytest.fixture
def served(demo_dir: Path) -> Iterator[str]:
    with _serve(demo_dir / "demo.toml", {}) as url:
        yield url


def test_the_page_shows_both_demo_instances_with_charts_in_a_real_browser(
    served: str, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    if not CHROMIUM.is_file():
        pytest.skip(f"no browser at {CHROMIUM}: install Debian's chromium package (apt-get install chromium)")
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            response = page.goto(f"{served}/status")
            assert response is not None and response.status == 200
            for name in ("salesforce", "hubspot"):
                section = page.locator(f"section#{name}")
                assert section.locator("h2").inner_text().startswith(name)
                charts = section.locator("svg.chart")
                assert charts.count() == CHARTS
                for index in range(CHARTS):
                    assert charts.nth(index).locator(".point").count() >= 1, (
                        f"{name}: chart {index} has no data point"
                    )
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            print(f"screenshot: {SCREENSHOT}")
        finally:
            browser.close()
    assert not errors, errors
    assert all(url.startswith(served) for url in requested), f"the page fetched from elsewhere: {requested}"


def test_status_json_over_the_socket_is_what_status_json_prints(served: str, demo_dir: Path) -> None:
    served_json = httpx.get(f"{served}/status.json", timeout=10).json()
    result = CliRunner().invoke(main, ["status", "--json", "--config", str(demo_dir / "demo.toml")])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    for report in (served_json, printed):
        report.pop("generated_at")
        for item in report["instances"]:  # measured against the moment each was made
            item.pop("cursor_lag_seconds")
    assert served_json == printed
    assert [i["name"] for i in printed["instances"]] == ["salesforce", "hubspot"]
    salesforce = printed["instances"][0]
    assert salesforce["this_cycle"]["fields_written"] > 0 and salesforce["series"]["fill"][0]["points"]


def test_an_unknown_path_is_404_and_healthz_answers(served: str) -> None:
    assert httpx.get(f"{served}/nothing-here", timeout=10).status_code == 404
    assert httpx.get(f"{served}/healthz", timeout=10).json() == {"status": "ok"}


def test_a_configured_token_is_required(demo_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "guarded.toml"
    config.write_text((demo_dir / "demo.toml").read_text() + '\n[status]\ntoken_env = "STATUS_TOKEN"\n')

    async def metrics(request: Request) -> Response:  # what the daemon adds beside the page (/metrics)
        return PlainTextResponse("up 1\n")

    with _serve(config, {"STATUS_TOKEN": "s3cret-token"}, [Route("/metrics", metrics)]) as url:
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401, "an added route is guarded too"
        bearer = {"Authorization": "Bearer s3cret-token"}
        assert httpx.get(f"{url}/metrics", headers=bearer, timeout=10).text == "up 1\n"
        assert httpx.get(f"{url}/status", timeout=10).status_code == 401
        wrong = httpx.get(f"{url}/status.json", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401 and "s3cret-token" not in wrong.text
        good = httpx.get(f"{url}/status", headers={"Authorization": "Bearer s3cret-token"}, timeout=10)
        assert good.status_code == 200 and "salesforce" in good.text
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200, "a probe needs no token"


def test_a_listen_open_to_other_machines_needs_a_token(demo_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "open.toml"
    text = (demo_dir / "demo.toml").read_text()
    config.write_text(text + '\n[status]\nlisten = "0.0.0.0:8081"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={}, credentials=False)
    [problem] = caught.value.problems
    assert problem.startswith("status.listen") and "set token_env" in problem
    config.write_text(text + '\n[status]\nlisten = "0.0.0.0:8081"\ntoken_env = "STATUS_TOKEN"\n')
    assert load_config(config, env={"STATUS_TOKEN": "t"}, credentials=False).settings.status.port == 8081


def test_status_text_is_aligned_without_reprs(demo_dir: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--config", str(demo_dir / "demo.toml")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "salesforce (salesforce, schedule every 15m)" in lines
        and "hubspot (hubspot, schedule every 15m)" in lines
    )
    labelled = [line for line in lines if line.startswith("  ")]
    assert labelled and all(line[15] != " " for line in labelled), "every value starts in one column"
    assert not any(mark in result.output for mark in ("{", "}", "[", "]", "Counter(")), result.output
    assert [line.split(":")[0].strip() for line in lines].count("last sync") == 2, "one line per latest run"


def test_status_serve_says_a_taken_port_with_its_fix(demo_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["status", "--serve", "--listen", f"127.0.0.1:{port}", "--config", str(demo_dir / "demo.toml")],
        )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in result.output
    assert "pass --listen HOST:PORT" in result.output

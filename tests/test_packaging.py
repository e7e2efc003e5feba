"""The package as a user installs it: a wheel built from what the Dockerfile copies, installed in a fresh
virtualenv outside the repository, run from an empty folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def dockerfile_copies() -> list[str]:
    """The sources the image is built from: the Dockerfile's COPY lines (the last word is the destination)."""
    text = (ROOT / "Dockerfile").read_text()
    return [src for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE) for src in line.split()[:-1]]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from what the Dockerfile copies (nothing else of the checkout)."""
    context = tmp_path_factory.mktemp("context")
    for name in dockerfile_copies():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(context)],
        check=True, timeout=300,
    )  # fmt: skip
    (built,) = wheels.glob("lonescale_sync-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the wheel; its dependencies come from this test run's own environment (a .pth
    line), so the test needs no network for them and cannot see the repository's sources."""
    target = tmp_path_factory.mktemp("venv")
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # Appended, so the wheel's own `connector` (installed into the venv) is found before anything else;
    # the test's site-packages holds this checkout only as an editable finder, which a .pth line skips.
    Path(site, "zz-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    return target / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(
        [bin_dir / "lonescale-sync", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_installed_command_runs_from_its_own_package_outside_the_repository(
    installed: Path, tmp_path: Path
) -> None:
    shown = subprocess.run(
        [installed / "python", "-c", "import connector; print(connector.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(installed.parent) in shown and str(ROOT) not in shown, "the wheel's code, not the checkout's"
    result = run(installed, "--version", cwd=tmp_path)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert result.returncode == 0 and result.stdout.strip() == f"lonescale-sync, version {declared}"
    result = run(installed, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "lonescale-sync demo" in result.stdout


def test_the_wheel_carries_the_starter_files_and_the_stores_revisions(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"connector/starter/mappings/{p.name}" for p in (ROOT / "connector/starter/mappings").glob("*.toml")
    }
    revisions = {
        f"connector/store/alembic/versions/{p.name}"
        for p in (ROOT / "connector/store/alembic/versions").glob("*.py")
    }
    assert shipped and revisions
    assert {
        "connector/starter/config.example.toml",
        "connector/store/alembic/env.py",
    } | shipped | revisions <= names


# The variables the starter config names (connector.starter.env_names), as a person sets them.
STARTER_ENV = {"LONESCALE_API_KEY": "k" * 8, "SALESFORCE_CLIENT_ID": "id", "SALESFORCE_CLIENT_SECRET": "s" * 8,
               "HUBSPOT_ACCESS_TOKEN": "t" * 8}  # fmt: skip


def test_init_and_the_demo_run_from_an_empty_folder_outside_the_repository(
    installed: Path, tmp_path: Path
) -> None:
    result = run(installed, "init", "etc", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc" / "config.toml").is_file() and (tmp_path / "etc" / "mappings").is_dir()
    loads = (
        "import sys; from pathlib import Path; from connector.config import load_config; "
        f"c = load_config(Path('etc/config.toml'), env={STARTER_ENV!r}); "
        "print(*[c.resolve(i.mapping) for i in c.settings.instances])"
    )
    shown = subprocess.run(
        [installed / "python", "-c", loads], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [str(Path("etc/mappings/salesforce-contact.toml")),
                                    str(Path("etc/mappings/hubspot-contacts.toml"))]  # fmt: skip

    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(installed, "demo", "--contacts", "20", cwd=empty)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo ok" in result.stdout

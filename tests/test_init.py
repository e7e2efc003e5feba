"""`lonescale-sync init DIR`: a starter config and the shipped mappings, written for a person to adapt."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

from connector.cli import main
from connector.config import load_config
from connector.starter import EXAMPLE_CONFIG, MAPPINGS, env_names

# What the example's `*_env` keys name, set as a person would before `check`.
ENV = {
    "LONESCALE_API_KEY": "k" * 8,
    "SALESFORCE_CLIENT_ID": "id",
    "SALESFORCE_CLIENT_SECRET": "s" * 8,
    "HUBSPOT_ACCESS_TOKEN": "t" * 8,
}


def init(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["init", *args])
    return result.exit_code, result.output


def test_init_writes_a_config_that_loads_with_the_mappings_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "etc"
    code, output = init(str(target))

    assert code == 0, output
    written = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert written == ["config.toml", *sorted(f"mappings/{p.name}" for p in MAPPINGS.glob("*.toml"))]
    for mapping in MAPPINGS.glob("*.toml"):
        assert (target / "mappings" / mapping.name).read_text() == mapping.read_text()
    config = load_config(target / "config.toml", env=ENV)  # what `check` and `run` parse first
    assert {i.name: config.resolve(i.mapping) for i in config.settings.instances} == {
        "acme-salesforce": target / "mappings" / "salesforce-contact.toml",
        "acme-hubspot": target / "mappings" / "hubspot-contacts.toml",
    }
    assert f"wrote {target / 'config.toml'}" in output
    assert ", ".join(ENV) in output  # the secrets to set, by name
    assert f"lonescale-sync check --config {target / 'config.toml'}" in output
    assert f"lonescale-sync run --config {target / 'config.toml'}" in output


def test_the_variables_init_names_are_the_ones_the_config_needs() -> None:
    assert env_names(tomllib.loads(EXAMPLE_CONFIG.read_text())) == list(ENV)


def test_init_never_overwrites_a_file_without_force(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("# my edits\n")

    code, output = init(str(tmp_path))

    assert code == 2
    assert output.count("\n") == 1 and "config.toml already exists" in output and "--force" in output
    assert (tmp_path / "config.toml").read_text() == "# my edits\n"
    assert not (tmp_path / "mappings").exists(), "nothing written when anything would be overwritten"

    code, output = init(str(tmp_path), "--force")

    assert code == 0, output
    assert "my edits" not in (tmp_path / "config.toml").read_text()
    load_config(tmp_path / "config.toml", env=ENV)

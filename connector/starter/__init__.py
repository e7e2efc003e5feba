"""What a new installation starts from, shipped inside the package (the wheel carries these files, so they are
there after `pip install`, wherever the command runs): the example configuration and the default mappings.

The repository's `config.example.toml` and `mappings/` are links to these files. `lonescale-sync init DIR`
copies them out for a person to adapt (`write_starter`); the demo reads the mappings in place."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLE_CONFIG = HERE / "config.example.toml"
MAPPINGS = HERE / "mappings"
CONFIG_NAME = "config.toml"


class StarterExists(Exception):
    """`init` would overwrite files a person may have edited; `existing` names them."""

    def __init__(self, existing: list[Path]):
        self.existing = existing
        super().__init__(", ".join(map(str, existing)))


def mapping_files() -> list[Path]:
    return sorted(MAPPINGS.glob("*.toml"))


@dataclass(frozen=True)
class Starter:
    """What `write_starter` wrote: the config, the mappings, and the environment variables the config names."""

    config: Path
    mappings: list[Path]
    env: list[str]


def env_names(raw: Any) -> list[str]:
    """The environment variables a parsed config names (every `*_env` key), in the file's order."""
    found: list[str] = []
    if isinstance(raw, dict):
        for key, value in raw.items():
            if key.endswith("_env") and isinstance(value, str):
                found.append(value)
            else:
                found += env_names(value)
    elif isinstance(raw, list):
        for item in raw:
            found += env_names(item)
    return list(dict.fromkeys(found))


def write_starter(directory: Path, *, force: bool = False, version: str = "") -> Starter:
    """DIR/config.toml from the example and DIR/mappings/*.toml from the defaults. The example's mapping
    paths are relative to the config file (`mappings/salesforce-contact.toml`), so the written config names
    the copies beside it. Nothing is written when any target exists, unless `force`: raises StarterExists."""
    config = directory / CONFIG_NAME
    mappings = [directory / "mappings" / source.name for source in mapping_files()]
    existing = [path for path in (config, *mappings) if path.exists()]
    if existing and not force:
        raise StarterExists(existing)
    (directory / "mappings").mkdir(parents=True, exist_ok=True)
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    header = (
        f"# Written by `lonescale-sync init`{f' {version}' if version else ''} from config.example.toml.\n"
    )
    config.write_text(header + text, encoding="utf-8")
    for source, target in zip(mapping_files(), mappings, strict=True):
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return Starter(config, mappings, env_names(tomllib.loads(text)))

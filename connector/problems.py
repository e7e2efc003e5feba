"""Reading a TOML file into a typed model, every problem at once: where it is, what is wrong, what was there.

Shared by the configuration and the mappings. Values are validated strictly, as TOML typed them: a
`batch_size = "100"` is a string where a number belongs, and is said so rather than quietly read as 100.
(Validating the TOML tree as JSON text in strict mode keeps what TOML cannot type — a path, a choice
among names, a timestamp — readable from a string, and refuses only the coercions a person did not ask for.)
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
SHOWN = 60  # characters of an offending value quoted back


def key_path(location: tuple[str | int, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _shown(value: Any) -> str | None:
    if isinstance(value, dict | list):  # a whole table or list: its path says enough
        return None
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}…'"


def pydantic_problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        location = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            got = _shown(item.get("input"))
            if got is not None and got not in message:
                message = f"{message} (got {got})"
        problems.append(f"{key_path(location)}: {message}")
    return problems


def _plain(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a TOML value")


def validate_toml(model: type[M], raw: dict[str, Any]) -> M:
    """The model from a parsed TOML tree, strictly typed; raises ValidationError listing every problem."""
    return model.model_validate_json(json.dumps(raw, default=_plain), strict=True)

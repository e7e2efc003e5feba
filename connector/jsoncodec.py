"""JSON on the webhook's hot path: orjson's C codec, with the standard library's verdict wherever orjson refuses.

A webhook body is parsed twice, at intake (connector.webhook) and again when it is applied (connector.inbox),
and every answer is serialised: with per-contact deliveries at thousands a second, the stdlib's parser is a
visible share of the connector's CPU (bench/webhook_path.py measures both). orjson is stricter than `json`:
it refuses a lone surrogate escape (`"\\ud800"`), UTF-16 or UTF-32 bytes, a UTF-8 BOM and a float past a
double's range, all of which `json` reads. So a body orjson refuses is read again by `json`, and only its
verdict counts: whatever was accepted before is accepted still, and refused the same way. The one reading
that differs is an integer past 64 bits, which orjson reads as a float (no enrichment field holds one; the
stored body keeps its bytes either way).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

_encode_string = json.encoder.encode_basestring_ascii  # what json.dumps uses for a str


def loads(data: bytes | str, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """`json.loads(data, parse_constant=...)`, fast. `parse_constant` sees NaN and ±Infinity (orjson refuses
    them, so they always reach `json`)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, parse_constant=parse_constant)


_TEXT: dict[Any, str] = {None: "null", True: "true", False: "false"}


def dumps_text(value: Any) -> str:
    """Exactly `json.dumps(value)` (the store's JSON columns keep their text as it always was), faster for
    the scalars most column values are: a CRM field's old value is often null, its new one a string. The
    stdlib's `dumps` builds an encoder pass for anything but a string."""
    if value is None or value is True or value is False:
        return _TEXT[value]
    if type(value) is str:
        return _encode_string(value)
    return json.dumps(value)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as starlette's JSONResponse renders it (`ensure_ascii=False`, no spaces, no NaN)."""
    return orjson.dumps(value)

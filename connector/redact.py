"""Secrets that never print: a `Secret` value type and a logging filter that masks known secret values."""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

MASK = "***"


class Secret:
    """A credential from the environment. `str()` and `repr()` mask it; `.reveal()` is the only way out."""

    __slots__ = ("_value", "env")

    def __init__(self, value: str, env: str = ""):
        self._value = value
        self.env = env
        SecretRegistry.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.env or 'value'}={MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SecretRegistry:
    """Every secret value this process has loaded, so log lines can be scrubbed of them wherever they hide."""

    _values: ClassVar[set[str]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def add(cls, value: str) -> None:
        if len(value) >= 4:  # masking very short strings would garble ordinary log text
            with cls._lock:
                cls._values.add(value)

    @classmethod
    def scrub(cls, text: str) -> str:
        with cls._lock:
            values = sorted(cls._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text


class RedactingFilter(logging.Filter):
    """Masks registered secret values in the formatted message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = SecretRegistry.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def scrub_value(value: Any) -> Any:
    return SecretRegistry.scrub(value) if isinstance(value, str) else value

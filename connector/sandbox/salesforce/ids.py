"""Salesforce record ids: 15-character case-sensitive bodies with the 3-character case-checksum suffix."""

from __future__ import annotations

import string

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_ID_CHARS = frozenset(BASE62)


def checksum(body: str) -> str:
    """The 18-character suffix: one character per 5-character chunk, a bit set per uppercase letter."""
    suffix = ""
    for start in (0, 5, 10):
        bits = 0
        for offset, char in enumerate(body[start : start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << offset
        suffix += _SUFFIX_ALPHABET[bits]
    return suffix


def make_id(prefix: str, org: int, serial: int) -> str:
    """A deterministic 18-character id: key prefix, an org-ish segment from the seed, a serial number."""
    body = prefix + "5" + _base62(org % 62**2, 2) + "00" + _base62(serial, 7)
    return body + checksum(body)


def normalize(value: object) -> str | None:
    """The canonical 18-character form of a 15- or 18-character id, or None when it is not a well-formed id.

    18-character ids are case-insensitive: the suffix restores each letter's case, as Salesforce does.
    """
    if not isinstance(value, str) or len(value) not in (15, 18) or not set(value) <= _ID_CHARS:
        return None
    if len(value) == 15:
        return value + checksum(value)
    suffix = value[15:].upper()
    if any(char not in _SUFFIX_ALPHABET for char in suffix):
        return None
    restored = []
    for chunk, code in enumerate(suffix):
        bits = _SUFFIX_ALPHABET.index(code)
        for offset in range(5):
            char = value[chunk * 5 + offset]
            restored.append(char.upper() if bits & (1 << offset) else char.lower())
    body = "".join(restored)
    if checksum(body) != suffix:
        return None
    return body + suffix


def _base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return digits.rjust(width, "0")

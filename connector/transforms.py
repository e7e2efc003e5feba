"""Named value transforms that mappings may apply; each is total: bad input gives None, never an exception."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

# Free-mail providers: an address there says nothing about the person's company, so it gives no domain.
PERSONAL_EMAIL_DOMAINS = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.fr",
        "yahoo.co.uk",
        "ymail.com",
        "hotmail.com",
        "hotmail.fr",
        "hotmail.co.uk",
        "outlook.com",
        "outlook.fr",
        "live.com",
        "live.fr",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "gmx.com",
        "web.de",
        "free.fr",
        "orange.fr",
        "wanadoo.fr",
        "laposte.net",
        "sfr.fr",
        "proton.me",
        "protonmail.com",
        "yandex.ru",
        "mail.ru",
        "zoho.com",
        "qq.com",
        "163.com",
    ]
)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LINKEDIN_PROFILE = re.compile(r"^/(?:in|pub)/([^/?#]+)")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def domain_from_url(value: Any) -> str | None:
    """'https://www.Acme.com/about' → 'acme.com'; a bare 'acme.com' works too."""
    text = _text(value)
    if text is None:
        return None
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    host = host.lower().removeprefix("www.")
    return host if _HOSTNAME.match(host) else None


def domain_from_email(value: Any) -> str | None:
    """'jane@acme.com' → 'acme.com'; free-mail addresses ('jane@gmail.com') give None."""
    text = _text(value)
    if text is None or text.count("@") != 1:
        return None
    domain = text.rsplit("@", 1)[1].lower()
    if domain in PERSONAL_EMAIL_DOMAINS or not _HOSTNAME.match(domain):
        return None
    return domain


def linkedin_url(value: Any) -> str | None:
    """Any way people write a LinkedIn profile URL → 'https://www.linkedin.com/in/<slug>/'.

    Scheme-less ('linkedin.com/in/x'), country hosts ('fr.linkedin.com'), tracking query strings and
    capitalised slugs are all normalised; LoneScale's schema wants an absolute URI, and one spelling per
    person keeps identity matching exact. Anything that is not a profile URL gives None.
    """
    text = _text(value)
    if text is None:
        return None
    parts = urlsplit(text if "//" in text else f"//{text}")
    host = (parts.hostname or "").lower()
    if host != "linkedin.com" and not host.endswith(".linkedin.com"):
        return None
    match = _LINKEDIN_PROFILE.match(parts.path)
    if not match:
        return None
    # A slug may hold accents ('josé-garcía'): RFC 3986 wants them percent-encoded, or the URI format fails.
    slug = quote(unquote(match.group(1)).lower(), safe="-_.~")
    return f"https://www.linkedin.com/in/{slug}/"


def e164(value: Any) -> str | None:
    """'+33 6 12 34 56 78' → '+33612345678'. Numbers without a country code give None: guessing one is worse."""
    text = _text(value)
    if text is None or not text.startswith("+"):
        return None
    digits = re.sub(r"[\s().\-/]", "", text[1:])
    return f"+{digits}" if digits.isdigit() and 7 <= len(digits) <= 15 else None


def strip(value: Any) -> str | None:
    return _text(value)


def lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


TRANSFORMS: dict[str, Callable[[Any], str | None]] = {
    "domain_from_url": domain_from_url,
    "domain_from_email": domain_from_email,
    "linkedin_url": linkedin_url,
    "e164": e164,
    "strip": strip,
    "lower": lower,
}

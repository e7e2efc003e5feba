"""Hand-written validation of `POST /trigger/enrich` bodies against the published `EnrichmentRequest` schema
(docs/lonescale.md#the-request-schema)."""

from __future__ import annotations

import json
import re
from typing import Any

ENRICHMENT_TYPES = ("email", "phone", "profile")
REQUEST_KEYS = frozenset({"enrichment_type", "custom", "contacts", "webhook_url", "detect_job_change"})
REQUIRED_REQUEST_KEYS = ("enrichment_type", "contacts", "webhook_url")
CONTACT_STRING_KEYS = (
    "firstname",
    "lastname",
    "email",
    "job_title",
    "linkedin_url",
    "domain",
    "company_name",
)
CONTACT_KEYS = frozenset({*CONTACT_STRING_KEYS, "custom"})
REQUIRED_CONTACT_KEYS = ("firstname", "lastname")
# Properties declared on the open `custom` objects keep their declared type even though extra keys are allowed.
REQUEST_CUSTOM_STRING_KEYS = ("id", "provider", "enrichment_type")
CONTACT_CUSTOM_STRING_KEYS = ("contact_id",)


class RequestRejected(ValueError):
    """The body breaks the schema; the message says where, for `/__sandbox/rejections`."""


def parse_json(raw: bytes, content_type: str | None) -> Any:
    # Express's json() parser only reads application/json; any other body leaves NestJS an empty object.
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise RequestRejected(f"content-type {content_type!r} is not application/json")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError as exc:
        raise RequestRejected(f"body is not JSON: {exc}") from exc


def _refuse_constant(name: str) -> Any:
    # Python reads NaN and Infinity; JSON (and Express's parser) does not.
    raise ValueError(f"{name} is not JSON")


def validate_enrichment_request(body: Any) -> dict[str, Any]:
    """Returns the body unchanged when it matches `EnrichmentRequest`; raises `RequestRejected` otherwise."""
    request = _check_object(body, "body", REQUEST_KEYS, REQUIRED_REQUEST_KEYS)
    _check_enrichment_type(request["enrichment_type"])
    _check_contacts(request["contacts"])
    webhook_url = request["webhook_url"]
    if not isinstance(webhook_url, str):
        raise RequestRejected(f"webhook_url must be a string, got {_json_type(webhook_url)}")
    if not is_uri(webhook_url):
        raise RequestRejected(f"webhook_url {webhook_url!r} is not an absolute URI (format: uri)")
    if "detect_job_change" in request and not isinstance(request["detect_job_change"], bool):
        raise RequestRejected(
            f"detect_job_change must be a boolean, got {_json_type(request['detect_job_change'])}"
        )
    if "custom" in request:
        _check_object(request["custom"], "custom", strings=REQUEST_CUSTOM_STRING_KEYS)
    return request


def _check_object(
    value: Any,
    where: str,
    keys: frozenset[str] | None = None,
    required: tuple[str, ...] = (),
    strings: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`value` when it is one schema object: an object, no key outside `keys` (additionalProperties: false;
    None: open), the `required` keys present, and the `strings` that are present strings, in that order."""
    if not isinstance(value, dict):
        raise RequestRejected(f"{where} must be an object, got {_json_type(value)}")
    extra = sorted(set(value) - keys) if keys is not None else []
    if extra:
        raise RequestRejected(f"{where} has unknown keys {extra} (additionalProperties: false)")
    for key in required:
        if key not in value:
            raise RequestRejected(f"{where} is missing required key {key!r}")
    for key in strings:
        if key in value and not isinstance(value[key], str):
            raise RequestRejected(f"{where}.{key} must be a string, got {_json_type(value[key])}")
    return value


def _check_array(value: Any, where: str) -> list[Any]:
    """`value` when it is a schema array with at least one item (minItems: 1)."""
    if not isinstance(value, list):
        raise RequestRejected(f"{where} must be an array, got {_json_type(value)}")
    if not value:
        raise RequestRejected(f"{where} must have at least 1 item (minItems: 1)")
    return value


def _check_enrichment_type(value: Any) -> None:
    for item in _check_array(value, "enrichment_type"):
        if not isinstance(item, str) or item not in ENRICHMENT_TYPES:
            raise RequestRejected(f"enrichment_type item {item!r} is not one of {list(ENRICHMENT_TYPES)}")
    if len(set(value)) != len(value):
        raise RequestRejected(f"enrichment_type {value} repeats an item (uniqueItems: true)")


def _check_contacts(value: Any) -> None:
    for index, item in enumerate(_check_array(value, "contacts")):
        where = f"contacts[{index}]"
        contact = _check_object(item, where, CONTACT_KEYS, REQUIRED_CONTACT_KEYS, CONTACT_STRING_KEYS)
        if "email" in contact and not is_email(contact["email"]):
            raise RequestRejected(f"{where}.email {contact['email']!r} is not an email (format: email)")
        if "linkedin_url" in contact and not is_uri(contact["linkedin_url"]):
            raise RequestRejected(
                f"{where}.linkedin_url {contact['linkedin_url']!r} is not an absolute URI (format: uri)"
            )
        if "custom" in contact:
            _check_object(contact["custom"], f"{where}.custom", strings=CONTACT_CUSTOM_STRING_KEYS)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# --------------------------------------------------------------------------- formats

_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def is_email(value: str) -> bool:
    """RFC 5322 dot-atom local part and a dotted host name, as strict validators (validator.js isEmail) do."""
    if value.count("@") != 1 or len(value) > 254:
        return False
    local, domain = value.split("@")
    if not local or len(local) > 64 or not _ATEXT.match(local):
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_URI_CHARS = re.compile(r"^([A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
_REG_NAME = re.compile(r"^([A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+\]$|^\[v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]$")


def is_uri(value: str) -> bool:
    """An RFC 3986 absolute URI (JSON Schema `format: uri`): a scheme is required, so `linkedin.com/in/x`
    fails, and so does any raw space or non-ASCII character (an IRI is not a URI)."""
    scheme, colon, rest = value.partition(":")
    if not colon or not _SCHEME.match(scheme) or not _URI_CHARS.match(rest):
        return False
    if rest.count("#") > 1:
        return False
    hier = re.split(r"[?#]", rest, maxsplit=1)[0]
    if hier.startswith("//"):
        authority = hier[2:].split("/", 1)[0]
        if not _authority_ok(authority):
            return False
        if scheme.lower() in ("http", "https") and not authority.rpartition("@")[2].split(":")[0]:
            return False  # RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid
    elif "[" in hier or "]" in hier:
        return False
    elif scheme.lower() in ("http", "https"):
        return False  # `http:example.com` parses as RFC 3986 but no HTTP client can reach it
    return "[" not in rest[len(hier) :] and "]" not in rest[len(hier) :]


def _authority_ok(authority: str) -> bool:
    userinfo, _, hostport = authority.rpartition("@")
    if "[" in userinfo or "]" in userinfo or "@" in userinfo:
        return False
    if hostport.startswith("["):
        host, _, after = hostport.partition("]")
        host += "]"
        if not _IPV6.match(host):
            return False
        port = after[1:] if after.startswith(":") else after
        if after and not after.startswith(":"):
            return False
    else:
        host, _, port = hostport.partition(":")
        if not _REG_NAME.match(host):
            return False
    return port == "" or port.isdigit()

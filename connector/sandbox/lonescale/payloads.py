"""Result payloads: the current camelCase `EnrichPayload` (docs/lonescale.md#result-payloads), the legacy
snake_case one (docs/lonescale.md#legacy-shape) and the per-job envelope."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from connector.sandbox.lonescale.fakes import COUNTRIES, PAID_EMAIL_STATUSES, Lookup

PROFILE_KEYS = (
    "firstName",
    "lastName",
    "fullName",
    "linkedinUrl",
    "universalName",
    "jobTitle",
    "jobTitleSince",
    "companySince",
    "companyName",
    "companyDomain",
    "companyDescription",
    "companyEmployeeCount",
    "companyEmployeeRange",
    "companyIndustry",
    "companyLinkedinId",
    "companyLinkedinUrl",
    "companyCountryCode",
    "companyCountry",
    "companyCity",
)
EMAIL_KEYS = ("email", "emailStatus", "emails", "predicted_email", "email_pattern", "predicted_email_score")
PHONE_KEYS = ("phone", "phoneType", "phoneCountryCode", "phones")
TYPE_KEYS: dict[str, tuple[str, ...]] = {"profile": PROFILE_KEYS, "email": EMAIL_KEYS, "phone": PHONE_KEYS}
DIAL_PREFIXES = {"US": "+1", "GB": "+44", "FR": "+33", "DE": "+49"}


def camel_fields(
    lookup: Lookup,
    requested: Collection[str],
    hits: Collection[str],
    detect_job_change: bool,
    overrides: Mapping[str, Any],
) -> dict[str, Any]:
    """The data keys of one contact's `EnrichPayload`: only requested types, only what was found (or predicted).
    An unresolved contact has no data keys, only `status: "failed"` (OAS-next:
    docs/lonescale.md#result-payloads)."""
    if not lookup.found:
        return {"status": "failed"}
    out: dict[str, Any] = {}
    company = lookup.company
    if "profile" in requested and "profile" in hits and company is not None:
        out |= {
            "firstName": lookup.firstname,
            "lastName": lookup.lastname,
            "fullName": f"{lookup.firstname} {lookup.lastname}".strip(),
            "linkedinUrl": f"https://www.linkedin.com/in/{lookup.slug}/",
            "universalName": lookup.slug,
            "jobTitle": lookup.title,
            "jobTitleSince": {"month": lookup.title_since[0], "year": lookup.title_since[1]},
            "companySince": {"month": lookup.company_since[0], "year": lookup.company_since[1]},
            "companyName": company.name,
            "companyDomain": company.domain,
            "companyDescription": company.description,
            "companyEmployeeCount": company.employee_count,
            "companyEmployeeRange": company.employee_range,
            "companyIndustry": company.industry,
            "companyLinkedinId": company.linkedin_id,
            "companyLinkedinUrl": company.linkedin_url,
            "companyCountryCode": company.country_code,
            "companyCountry": company.country,
            "companyCity": company.city,
        }
    if "email" in requested:
        if "email" in hits and lookup.emails:
            out |= {
                "email": lookup.emails[0][0],
                "emailStatus": lookup.emails[0][1],
                "emails": [{"email": email, "status": status} for email, status in lookup.emails],
            }
        elif lookup.predicted is not None:
            email, pattern, score = lookup.predicted
            out |= {
                "email": email,
                "emailStatus": "predicted",
                "emails": [{"email": email, "status": "predicted"}],
                "predicted_email": email,
                "email_pattern": pattern,
                "predicted_email_score": score,  # a string, as documented
            }
    if "phone" in requested and "phone" in hits and lookup.phones:
        first = lookup.phones[0]
        out |= {
            "phone": first.number,
            "phoneType": first.kind,
            "phoneCountryCode": first.region,
            "phones": [{"number": p.number, "region": p.region} for p in lookup.phones],
        }
    if detect_job_change and "profile" in requested:
        # Without the profile there is nothing to compare, which the API reports as false
        # (docs/lonescale.md#job-change).
        out["jobChangeDetected"] = lookup.job_change_detected and "profile" in hits
    for key, value in overrides.items():
        group = next((t for t, keys in TYPE_KEYS.items() if key in keys), None)
        allowed = key == "jobChangeDetected" and "jobChangeDetected" in out
        if allowed or (group in requested and group in hits) or (group == "email" and "email" in out):
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
    return out


def billable(kind: str, fields: Mapping[str, Any]) -> bool:
    """Whether a found type costs credits: predicted, unknown and invalid emails are free
    (docs/lonescale.md#credits)."""
    if kind == "email":
        return fields.get("emailStatus") in PAID_EMAIL_STATUSES
    return any(key in fields for key in TYPE_KEYS[kind])


def with_custom(fields: dict[str, Any], contact: Mapping[str, Any], echo: bool) -> dict[str, Any]:
    if echo and "custom" in contact:
        return {**fields, "custom": contact["custom"]}
    return dict(fields)


def legacy_item(fields: Mapping[str, Any], contact: Mapping[str, Any]) -> dict[str, Any]:
    """The Dec-2025 snake_case shape (docs/lonescale.md#legacy-shape): input names on top, `most_probable_*`,
    nested `profile`."""
    out: dict[str, Any] = {"firstname": contact["firstname"], "lastname": contact["lastname"]}
    if "domain" in contact:
        out["domain"] = contact["domain"]
    if "email" in fields:
        out["most_probable_email"] = fields["email"]
        out["most_probable_email_status"] = fields.get("emailStatus")
        out["emails"] = fields.get("emails", [])
        for key in ("predicted_email", "email_pattern", "predicted_email_score"):
            if key in fields:
                out[key] = fields[key]
    if "phone" in fields:
        region = fields.get("phoneCountryCode", "")
        out["most_probable_phone"] = fields["phone"]
        out["most_probable_phone_type"] = fields.get("phoneType")
        out["most_probable_phone_status"] = "valid"
        out["most_probable_phone_country_code"] = region
        out["phones"] = [
            _legacy_phone(p["number"], p["region"], fields.get("phoneType") if i == 0 else "mobile")
            for i, p in enumerate(fields.get("phones", []))
        ]
    if "fullName" in fields:
        out["profile"] = _legacy_profile(fields)
    if "jobChangeDetected" in fields:
        out["job_change_detected"] = fields["jobChangeDetected"]
    for key in ("custom", "status"):
        if key in fields:
            out[key] = fields[key]
    return out


def _legacy_profile(fields: Mapping[str, Any]) -> dict[str, Any]:
    city, country = fields.get("companyCity"), fields.get("companyCountry")
    return {
        "linkedin_url": fields.get("linkedinUrl"),
        "linkedin_handle": fields.get("universalName"),
        "firstname": fields.get("firstName"),
        "lastname": fields.get("lastName"),
        "location": ", ".join(part for part in (city, country) if part) or None,
        "summary": None,
        "headline": f"{fields.get('jobTitle')} at {fields.get('companyName')}",
        "position": {
            "title": fields.get("jobTitle"),
            "description": None,
            "start_date": fields.get("jobTitleSince"),
            "end_date": None,
            "company": {
                "name": fields.get("companyName"),
                "domain": fields.get("companyDomain"),
                "linkedin_url": fields.get("companyLinkedinUrl"),
            },
        },
    }


def _legacy_phone(number: str, region: str, kind: str | None) -> dict[str, Any]:
    prefix = DIAL_PREFIXES.get(region, "")
    national = number.removeprefix(prefix)
    if region == "US":
        grouped = f"{national[:3]}-{national[3:6]}-{national[6:]}"
    elif region == "FR":
        grouped = " ".join([national[:1], *(national[i : i + 2] for i in range(1, len(national), 2))])
    elif region == "GB" and national.startswith("20"):
        grouped = f"{national[:2]} {national[2:6]} {national[6:]}"
    else:
        grouped = f"{national[:4]} {national[4:]}"
    return {
        "type": kind,
        "number": number,
        "international_format": f"{prefix} {grouped}",
        "country_name": COUNTRIES.get(region, ("", ()))[0],
        "country_code": region,
        "region": region,
        "prefix": prefix,
    }


def envelope(job_id: str, items: list[dict[str, Any]], custom: Any | None) -> dict[str, Any]:
    """The per-job webhook body: LoneScale documents none, so this mirrors the polling result
    (docs/lonescale.md#polling)."""
    body: dict[str, Any] = {"id": job_id, "status": "finished", "contacts": items}
    if custom is not None:
        body["custom"] = custom
    return body

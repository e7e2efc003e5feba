"""Who an input contact "is": its identity, and the stable fake person and company the waterfall finds for it."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connector.sandbox.kit import chance, happens
from connector.sandbox.people import COMPANY_STEMS, COMPANY_SUFFIXES, TITLES, ascii_slug

# Dates are drawn around a fixed year, not today's, so results do not drift from one day to the next.
REFERENCE_YEAR = 2025
PAID_EMAIL_STATUSES = ("valid", "catch_all")
EMAIL_PATTERNS = ("firstname.lastname", "flastname", "firstname", "firstnamelastname", "firstname_lastname")
EMPLOYEE_RANGES = (
    (10, "1-10"),
    (50, "11-50"),
    (200, "51-200"),
    (500, "201-500"),
    (1000, "501-1000"),
    (5000, "1001-5000"),
    (10000, "5001-10000"),
)
INDUSTRIES = (
    "Software",
    "Information Technology & Services",
    "Financial Services",
    "Marketing & Advertising",
    "Retail",
    "Manufacturing",
    "Hospital & Health Care",
    "Renewables & Environment",
)
COUNTRIES = {
    "US": ("United States", ("San Francisco", "New York", "Austin")),
    "FR": ("France", ("Paris", "Lyon", "Nantes")),
    "DE": ("Germany", ("Berlin", "Munich", "Hamburg")),
    "GB": ("United Kingdom", ("London", "Manchester", "Leeds")),
}
TLD_COUNTRY = {"fr": "FR", "de": "DE", "uk": "GB"}
TLDS = ("com", "io", "fr", "de", "co.uk", "ai")


@dataclass(frozen=True)
class FakeCompany:
    name: str
    domain: str
    description: str
    employee_count: int
    employee_range: str
    industry: str
    linkedin_id: str
    linkedin_url: str
    country_code: str
    country: str
    city: str


@dataclass(frozen=True)
class Phone:
    number: str  # E.164
    region: str  # ISO 3166-1 alpha-2, as D-fields maps phoneCountryCode to a region
    kind: str


@dataclass(frozen=True)
class Lookup:
    """Everything the waterfall could find for one input contact; payloads pick from it by type."""

    identity: str | None
    found: bool
    firstname: str
    lastname: str
    input_domain: str | None
    slug: str = ""
    title: str = ""
    title_since: tuple[int, int] = (1, REFERENCE_YEAR)
    company_since: tuple[int, int] = (1, REFERENCE_YEAR)
    company: FakeCompany | None = None
    job_change_detected: bool = False
    email_status: str | None = None  # None: the waterfall found no mailbox
    emails: tuple[tuple[str, str], ...] = ()
    predicted: tuple[str, str, str] | None = None  # (email, pattern, score), needs an input domain
    phones: tuple[Phone, ...] = ()


def linkedin_slug(url: str | None) -> str | None:
    if not url:
        return None
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "in":
        return parts[1].lower()
    return None


def normalise_domain(text: str | None) -> str | None:
    """`https://www.Acme.com/about` → `acme.com`: how people type a company domain into a CRM."""
    if not text or not text.strip():
        return None
    text = text.strip().lower()
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    host = host.removeprefix("www.")
    return host or None


def identity_of(contact: dict[str, Any]) -> str | None:
    """LinkedIn slug, else email, else name + domain or company; None when too little to match on."""
    slug = linkedin_slug(contact.get("linkedin_url"))
    if slug:
        return f"linkedin:{slug}"
    email = contact.get("email")
    if email:
        return f"email:{email.lower()}"
    first, last = contact.get("firstname", "").strip(), contact.get("lastname", "").strip()
    if not first or not last:
        return None
    where = normalise_domain(contact.get("domain")) or _company_key(contact.get("company_name"))
    if not where:
        return None
    return f"name:{ascii_slug(first)}|{ascii_slug(last)}@{where}"


def _company_key(name: str | None) -> str | None:
    if not name or not name.strip():
        return None
    words = [w for w in ascii_slug(name).split("-") if w not in {"inc", "sas", "gmbh", "ltd", "group", "co"}]
    return "".join(words) or None


def look_up(
    contact: dict[str, Any],
    seed: int,
    *,
    not_found_share: float,
    email_miss_share: float,
    phone_miss_share: float,
    job_change_share: float,
    job_change_unknown_share: float,
) -> Lookup:
    identity = identity_of(contact)
    first, last = contact["firstname"].strip(), contact["lastname"].strip()
    input_domain = normalise_domain(contact.get("domain"))
    if identity is None or happens(not_found_share, seed, "not-found", identity):
        return Lookup(identity, False, first, last, input_domain)
    rng = random.Random(f"{seed}|person|{identity}")
    input_company_key = input_domain or _company_key(contact.get("company_name"))
    moved = bool(input_company_key) and happens(job_change_share, seed, "moved", identity)
    if input_company_key and not moved:
        company = _input_company(seed, contact, input_domain)
    else:
        company = _other_company(seed, rng, avoid=input_company_key)
    input_title = (contact.get("job_title") or "").strip()
    title = input_title if input_title and not moved else rng.choice([t for t in TITLES if t])
    company_year = REFERENCE_YEAR if moved else rng.randint(2012, REFERENCE_YEAR - 2)
    company_since = (rng.randint(1, 12), company_year)
    title_year = rng.randint(company_year, REFERENCE_YEAR)
    title_since = company_since if title_year == company_year else (rng.randint(1, 12), title_year)
    slug = linkedin_slug(contact.get("linkedin_url")) or (
        f"{ascii_slug(first)}-{ascii_slug(last)}-{rng.getrandbits(32):08x}"
    )
    email_status, emails = _emails(seed, identity, contact, first, last, company, email_miss_share, moved)
    return Lookup(
        identity=identity,
        found=True,
        firstname=first,
        lastname=last,
        input_domain=input_domain,
        slug=slug,
        title=title,
        title_since=title_since,
        company_since=company_since,
        company=company,
        job_change_detected=moved and not happens(job_change_unknown_share, seed, "jc-unknown", identity),
        email_status=email_status,
        emails=emails,
        predicted=_predicted(seed, identity, first, last, input_domain),
        phones=_phones(seed, identity, company, phone_miss_share),
    )


@functools.lru_cache(maxsize=4096)
def company_for(seed: int, domain: str, name: str) -> FakeCompany:
    """Company details depend only on its domain, so two people at one company agree."""
    rng = random.Random(f"{seed}|company|{domain}")
    count = rng.choice([rng.randint(2, 50), rng.randint(51, 800), rng.randint(801, 20000)])
    employee_range = next((label for top, label in EMPLOYEE_RANGES if count <= top), "10001+")
    industry = rng.choice(INDUSTRIES)
    country_code = TLD_COUNTRY.get(domain.rsplit(".", 1)[-1]) or rng.choice(["US", "US", "GB", "FR", "DE"])
    country, cities = COUNTRIES[country_code]
    return FakeCompany(
        name=name,
        domain=domain,
        description=f"{name} builds {industry.lower()} products for teams in {country}.",
        employee_count=count,
        employee_range=employee_range,
        industry=industry,
        linkedin_id=str(rng.randint(10_000, 99_999_999)),
        linkedin_url=f"https://www.linkedin.com/company/{ascii_slug(name)}",
        country_code=country_code,
        country=country,
        city=rng.choice(cities),
    )


def _input_company(seed: int, contact: dict[str, Any], input_domain: str | None) -> FakeCompany:
    name = (contact.get("company_name") or "").strip()
    domain = input_domain or f"{_company_key(name)}.com"
    if not name:
        name = domain.split(".")[0].replace("-", " ").title()
    return company_for(seed, domain, name)


def _other_company(seed: int, rng: random.Random, avoid: str | None) -> FakeCompany:
    while True:
        stem = rng.choice(COMPANY_STEMS)
        key = ascii_slug(stem).replace("-", "")
        domain = f"{key}.{rng.choice(TLDS)}"
        if avoid is None or key not in avoid:
            return company_for(seed, domain, stem + rng.choice(COMPANY_SUFFIXES))


def _local_part(pattern: str, first: str, last: str) -> str:
    f, la = ascii_slug(first).replace("-", ""), ascii_slug(last).replace("-", "")
    return {
        "firstname.lastname": f"{f}.{la}",
        "flastname": f"{f[:1]}{la}",
        "firstname": f,
        "firstnamelastname": f"{f}{la}",
        "firstname_lastname": f"{f}_{la}",
    }[pattern]


def _emails(
    seed: int,
    identity: str,
    contact: dict[str, Any],
    first: str,
    last: str,
    company: FakeCompany,
    miss_share: float,
    moved: bool,
) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    if happens(miss_share, seed, "email-miss", identity):
        return None, ()
    roll = chance(seed, "email-status", identity)
    status = (
        "valid" if roll < 0.7 else "catch_all" if roll < 0.88 else "unknown" if roll < 0.96 else "invalid"
    )
    given = (contact.get("email") or "").lower()
    if given.endswith("@" + company.domain):
        primary = given
    else:
        pattern = EMAIL_PATTERNS[int(chance(seed, "pattern", company.domain) * len(EMAIL_PATTERNS))]
        primary = f"{_local_part(pattern, first, last)}@{company.domain}"
    emails = [(primary, status)]
    if moved and given and given != primary:
        emails.append((given, "invalid"))  # the old work address bounces once someone has left
    return status, tuple(emails)


def _predicted(
    seed: int, identity: str, first: str, last: str, domain: str | None
) -> tuple[str, str, str] | None:
    # A predicted email is built from the input domain alone (docs/lonescale.md#credits: it needs a domain).
    if domain is None:
        return None
    if happens(0.3, seed, "no-pattern", domain):
        return f"{_local_part('firstname.lastname', first, last)}@{domain}", "firstname.lastname@domain", "0"
    pattern = EMAIL_PATTERNS[int(chance(seed, "pattern", domain) * len(EMAIL_PATTERNS))]
    score = str(55 + int(chance(seed, "score", identity) * 41))
    return f"{_local_part(pattern, first, last)}@{domain}", f"{pattern}@domain", score


def _phones(seed: int, identity: str, company: FakeCompany, miss_share: float) -> tuple[Phone, ...]:
    if happens(miss_share, seed, "phone-miss", identity):
        return ()
    rng = random.Random(f"{seed}|phone|{identity}")
    count = 2 if rng.random() < 0.25 else 1
    return tuple(
        _phone(rng, company.country_code, "mobile" if i or rng.random() < 0.8 else "landline")
        for i in range(count)
    )


def _phone(rng: random.Random, region: str, kind: str) -> Phone:
    # Numbers come from ranges reserved for fiction (NANP 555-01xx, Ofcom drama ranges) where they exist.
    digits = {
        ("US", "mobile"): f"+1{rng.choice(['415', '212', '646'])}55501{rng.randint(0, 99):02d}",
        ("US", "landline"): f"+1{rng.choice(['312', '617'])}55501{rng.randint(0, 99):02d}",
        ("GB", "mobile"): f"+447700900{rng.randint(0, 999):03d}",
        ("GB", "landline"): f"+44207946{rng.randint(0, 999):04d}",
        ("FR", "mobile"): f"+336{rng.randint(0, 99_999_999):08d}",
        ("FR", "landline"): f"+331{rng.randint(0, 99_999_999):08d}",
        ("DE", "mobile"): f"+4915{rng.randint(0, 999_999_999):09d}",
        ("DE", "landline"): f"+4930{rng.randint(0, 99_999_999):08d}",
    }[(region, kind)]
    return Phone(digits, region, kind)

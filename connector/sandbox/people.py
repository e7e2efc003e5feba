"""Seeded, realistic people and companies: the raw material both CRM emulators (and LoneScale's fakes) draw on.

Real CRM data is messy, so the seed is too: accented and non-Latin names, missing last names, duplicate
emails, personal-domain emails, contacts with no company, LinkedIn URLs written several ways, and a share of
contacts that already carry an email and a phone.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

FIRST_NAMES = [
    "John",
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Lucas",
    "Mia",
    "Ethan",
    "Sophia",
    "José",
    "Zoë",
    "François",
    "Chloé",
    "Björn",
    "Søren",
    "Łukasz",
    "Małgorzata",
    "Ólafur",
    "Inès",
    "Renée",
    "Jürgen",
    "Øystein",
    "Çağrı",
    "Nguyễn",
    "Siobhán",
    "Thérèse",
    "André",
    "Mátyás",
    "Agnès",
    "Hiroshi",
    "Yuki",
    "Wei",
    "Priya",
    "Arjun",
    "Fatima",
    "Omar",
    "Aleksandr",
    "Dmitri",
    "Ana",
]
LAST_NAMES = [
    "Doe",
    "Smith",
    "Johnson",
    "Brown",
    "Garcia",
    "Martin",
    "Bernard",
    "Dubois",
    "Lefèvre",
    "Müller",
    "Schröder",
    "Østergaard",
    "Kowalski",
    "Nowak",
    "Ólafsdóttir",
    "Núñez",
    "Peña",
    "García-Márquez",
    "O'Brien",
    "van der Berg",
    "de la Cruz",
    "Yılmaz",
    "Öztürk",
    "Tanaka",
    "Yamamoto",
    "Chen",
    "Wang",
    "Patel",
    "Singh",
    "Haddad",
    "Ivanov",
    "Popescu",
    "Novák",
    "Dvořák",
    "Horváth",
    "Rossi",
    "Ferrari",
    "Silva",
    "Santos",
    "Jensen",
]
TITLES = [
    "CEO",
    "CTO",
    "VP Sales",
    "Head of Marketing",
    "Sales Development Representative",
    "Account Executive",
    "RevOps Manager",
    "Data Engineer",
    "Product Manager",
    "Chief Revenue Officer",
    "Directrice Marketing",
    "Responsable des ventes",
    "Software Engineer",
    "Customer Success Manager",
    "Founder",
    "",
]
COMPANY_STEMS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Massive",
    "Aperture",
    "Black Mesa",
    "Oscorp",
    "Gringotts",
    "Monarch",
    "Nakatomi",
    "Pied Piper",
    "Duff",
    "Sirius",
    "Zorg",
    "Ollivander",
    "Énergie Verte",
    "Brasserie Lumière",
    "Nordlys",
]
COMPANY_SUFFIXES = ["", " Inc", " SAS", " GmbH", " Labs", " Ltd", " Group", " Technologies", " & Co"]
TLDS = ["com", "io", "fr", "de", "co.uk", "ai", "eu"]
PERSONAL_DOMAINS = ["gmail.com", "yahoo.fr", "hotmail.com", "outlook.com", "icloud.com", "gmx.de", "free.fr"]


@dataclass(frozen=True)
class Company:
    key: int
    name: str
    domain: str
    website: str  # written as people write it: with or without scheme, www, trailing slash


@dataclass(frozen=True)
class Person:
    index: int
    firstname: str
    lastname: str | None
    email: str | None
    phone: str | None
    mobile: str | None
    title: str | None
    company: Company | None
    linkedin_url: str | None
    created_at: datetime
    modified_at: datetime


_NO_DECOMPOSITION = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "đ": "d", "æ": "ae", "œ": "oe"}
)


def ascii_slug(text: str) -> str:
    """'Lefèvre' → 'lefevre': how email local parts and LinkedIn slugs are usually spelled."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_NO_DECOMPOSITION))
    kept = "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in " -"))
    return "-".join(kept.lower().split()) or "x"


def make_companies(rng: random.Random, count: int) -> list[Company]:
    companies = []
    seen: set[str] = set()
    for key in range(count):
        stem = COMPANY_STEMS[key % len(COMPANY_STEMS)]
        round_ = key // len(COMPANY_STEMS)
        name = stem + (f" {round_ + 1}" if round_ else "") + rng.choice(COMPANY_SUFFIXES)
        domain = f"{ascii_slug(stem).replace('-', '')}{round_ or ''}.{rng.choice(TLDS)}"
        while domain in seen:
            domain = "x" + domain
        seen.add(domain)
        website = rng.choice(
            [f"https://www.{domain}", f"http://{domain}/", domain, f"www.{domain}", f"https://{domain}/about"]
        )
        companies.append(Company(key, name, domain, website))
    return companies


def linkedin_forms(slug: str, rng: random.Random) -> str:
    return rng.choice(
        [
            f"https://www.linkedin.com/in/{slug}/",
            f"https://www.linkedin.com/in/{slug}",
            f"linkedin.com/in/{slug}",
            f"http://fr.linkedin.com/in/{slug}",
            f"https://linkedin.com/in/{slug}?utm_source=share&utm_medium=member_desktop",
            f"www.linkedin.com/in/{slug.capitalize()}/",
        ]
    )


def phone_number(rng: random.Random) -> str:
    return rng.choice(
        [
            f"+1 415 555 {rng.randint(1000, 9999)}",
            f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
            f"(212) 555-{rng.randint(1000, 9999)}",
            f"+49 30 {rng.randint(1000000, 9999999)}",
        ]
    )


def generate_people(count: int, seed: int, now: datetime | None = None) -> list[Person]:
    """`count` people, the same for the same seed. Modification times spread over the last 30 days, with ties."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # CRMs keep milliseconds
    companies = make_companies(rng, max(3, count // 6))
    people: list[Person] = []
    previous_modified = now - timedelta(days=30)
    for index in range(count):
        first = rng.choice(FIRST_NAMES)
        last: str | None = rng.choice(LAST_NAMES) if rng.random() > 0.04 else None
        company = rng.choice(companies) if rng.random() > 0.10 else None
        slug = f"{ascii_slug(first)}-{ascii_slug(last or 'x')}-{rng.randint(10, 99999)}"

        enriched_already = rng.random() < 0.30
        email: str | None = None
        roll = rng.random()
        if enriched_already or roll < 0.35:
            if company and rng.random() > 0.2:
                email = f"{ascii_slug(first)}.{ascii_slug(last or first)}@{company.domain}".replace("-", "")
            else:
                email = f"{ascii_slug(first)}{rng.randint(1, 999)}@{rng.choice(PERSONAL_DOMAINS)}"
        if people and rng.random() < 0.03:  # the same person entered twice, or a shared inbox
            email = rng.choice(people).email or email
        phone = phone_number(rng) if enriched_already or rng.random() < 0.1 else None
        mobile = phone_number(rng) if enriched_already and rng.random() < 0.5 else None

        # Ties: about one record in five shares its modification millisecond with the previous one.
        if rng.random() < 0.2:
            modified = previous_modified
        else:
            modified = previous_modified + timedelta(
                milliseconds=rng.randint(1, int(30 * 86400_000 / max(count, 1)))
            )
        modified = min(modified, now - timedelta(seconds=5))
        previous_modified = modified
        created = modified - timedelta(days=rng.randint(0, 400), milliseconds=rng.randint(0, 86400_000))

        people.append(
            Person(
                index=index,
                firstname=first,
                lastname=last,
                email=email,
                phone=phone,
                mobile=mobile,
                title=rng.choice(TITLES) or None,
                company=company,
                linkedin_url=linkedin_forms(slug, rng) if rng.random() < 0.55 else None,
                created_at=created,
                modified_at=modified,
            )
        )
    return people

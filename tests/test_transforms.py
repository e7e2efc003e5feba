"""Named transforms: the way people really type URLs, emails and phone numbers."""

from __future__ import annotations

import pytest

from connector.transforms import domain_from_email, domain_from_url, e164, linkedin_url


@pytest.mark.parametrize(
    ("value", "domain"),
    [
        ("https://www.Acme.com/about", "acme.com"),
        ("http://acme.io/", "acme.io"),
        ("acme.co.uk", "acme.co.uk"),
        ("www.globex.fr", "globex.fr"),
        ("  https://sub.acme.com:8443/x?y=1 ", "sub.acme.com"),
        ("not a url", None),
        ("", None),
        (None, None),
        ("localhost", None),
    ],
)
def test_domain_from_url(value: object, domain: str | None) -> None:
    assert domain_from_url(value) == domain


@pytest.mark.parametrize(
    ("value", "domain"),
    [
        ("jane.doe@Acme.com", "acme.com"),
        ("jane@gmail.com", None),
        ("pierre@free.fr", None),
        ("two@at@signs.com", None),
        ("nobody", None),
        (None, None),
    ],
)
def test_domain_from_email_only_for_business_addresses(value: object, domain: str | None) -> None:
    assert domain_from_email(value) == domain


@pytest.mark.parametrize(
    "value",
    [
        "https://www.linkedin.com/in/jane-doe/",
        "https://www.linkedin.com/in/jane-doe",
        "linkedin.com/in/jane-doe",
        "http://fr.linkedin.com/in/jane-doe",
        "https://linkedin.com/in/jane-doe?utm_source=share&utm_medium=member_desktop",
        "www.linkedin.com/in/Jane-Doe/",
    ],
)
def test_every_way_of_writing_a_linkedin_profile_gives_one_url(value: str) -> None:
    assert linkedin_url(value) == "https://www.linkedin.com/in/jane-doe/"


def test_an_accented_slug_is_percent_encoded_into_a_valid_uri() -> None:
    assert linkedin_url("linkedin.com/in/José-García") == "https://www.linkedin.com/in/jos%C3%A9-garc%C3%ADa/"
    assert (
        linkedin_url("https://www.linkedin.com/in/jos%C3%A9-garc%C3%ADa/")
        == "https://www.linkedin.com/in/jos%C3%A9-garc%C3%ADa/"
    )


@pytest.mark.parametrize(
    "value", ["https://www.linkedin.com/company/acme", "https://evil.com/in/jane", "linkedin", "", None]
)
def test_what_is_not_a_linkedin_profile_gives_none(value: object) -> None:
    assert linkedin_url(value) is None


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("(212) 555-1234", None),
        ("+12", None),
    ],
)
def test_e164_never_guesses_a_country(value: str, number: str | None) -> None:
    assert e164(value) == number

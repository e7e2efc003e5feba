"""Salesforce emulator: SOQL through the real library: filters, ordering, relationships, paging, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connector.sandbox.salesforce.app import SalesforceEmulator
from connector.sandbox.salesforce.query import format_value
from connector.sandbox.salesforce.schema import CONTACT
from connector.sandbox.salesforce.store import Record
from tests.conftest import Served
from tests.sandbox.test_salesforce_auth import access_token, client

SMALL_PAGES = {"Sforce-Query-Options": "batchSize=200"}


@pytest.fixture
def sf(salesforce_sandbox: Served) -> Salesforce:
    return client(salesforce_sandbox)


def contacts(served: Served) -> list[Record]:
    """The emulator's own rows, read in-process, to check answers against a plain Python filter."""
    emulator: SalesforceEmulator = served.emulator
    return list(emulator.store.table(CONTACT).records.values())


def literal(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def ids(result: dict[str, Any]) -> list[str]:
    return [record["Id"] for record in result["records"]]


def test_pages_follow_next_records_url_paths_at_the_requested_batch_size(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    first = sf.query("SELECT Id, Email FROM Contact", headers=SMALL_PAGES)

    assert (first["totalSize"], first["done"], len(first["records"])) == (300, False, 200)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-200")
    every = [record["Id"] for record in sf.query_all_iter("SELECT Id FROM Contact", headers=SMALL_PAGES)]
    assert sorted(every) == sorted(record["Id"] for record in contacts(salesforce_sandbox))
    assert len(set(every)) == 300
    assert salesforce_sandbox.control.count(route="/services/data/{version}/query/{locator}", status=200) == 1


def test_batch_size_is_clamped_between_200_and_2000(sf: Salesforce) -> None:
    tiny = sf.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=10"})
    default = sf.query("SELECT Id FROM Contact")

    assert len(tiny["records"]) == 200
    assert default["done"] is True
    assert len(default["records"]) == 300
    assert "nextRecordsUrl" not in default


def test_records_carry_attributes_and_salesforce_datetimes(sf: Salesforce) -> None:
    record = sf.query("SELECT Id, SystemModstamp FROM Contact LIMIT 1")["records"][0]

    assert record["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v59.0/sobjects/Contact/{record['Id']}",
    }
    assert len(record["Id"]) == 18
    assert record["Id"].startswith("003")
    assert datetime.strptime(record["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z").tzinfo is not None
    assert record["SystemModstamp"].endswith("+0000")


def test_a_modstamp_window_returns_exactly_its_records_in_stamp_then_id_order(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    rows = sorted(contacts(salesforce_sandbox), key=lambda row: (row["SystemModstamp"], row["Id"]))
    low, high = rows[50]["SystemModstamp"], rows[250]["SystemModstamp"]
    soql = (
        f"SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= {literal(low)} "
        f"AND SystemModstamp < {literal(high)} ORDER BY SystemModstamp, Id"
    )

    answered = [record["Id"] for record in sf.query_all_iter(soql, headers=SMALL_PAGES)]

    assert answered == [row["Id"] for row in rows if low <= row["SystemModstamp"] < high]
    assert len(answered) >= 190  # ties at the bounds are included on the >= side only


def test_datetime_literals_accept_offsets_and_milliseconds(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    stamp = sorted(row["SystemModstamp"] for row in contacts(salesforce_sandbox))[150].replace(microsecond=0)
    in_paris = stamp.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=2)
    forms = [
        stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        stamp.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        in_paris.strftime("%Y-%m-%dT%H:%M:%S+02:00"),
    ]

    counts = {
        sf.query(f"SELECT COUNT() FROM Contact WHERE SystemModstamp > {form}")["totalSize"] for form in forms
    }

    assert counts == {sum(1 for row in contacts(salesforce_sandbox) if row["SystemModstamp"] > stamp)}


def test_boolean_logic_with_parentheses_and_not(salesforce_sandbox: Served, sf: Salesforce) -> None:
    soql = (
        "SELECT Id FROM Contact WHERE (Email = null OR Phone != null) AND NOT (FirstName IN ('Emma', 'José')) "
        "AND LastName != '[not provided]'"
    )

    expected = {
        row["Id"]
        for row in contacts(salesforce_sandbox)
        if (row["Email"] is None or row["Phone"] is not None)
        and row["FirstName"] not in ("Emma", "José")
        and row["LastName"] != "[not provided]"
    }

    assert set(ids(sf.query(soql))) == expected
    assert expected


def test_like_is_case_insensitive_with_both_wildcards(salesforce_sandbox: Served, sf: Salesforce) -> None:
    result = sf.query("SELECT Id, Email FROM Contact WHERE Email LIKE '%@GMAIL.COM' OR LastName LIKE 'd_e'")

    expected = {
        row["Id"]
        for row in contacts(salesforce_sandbox)
        if (row["Email"] or "").lower().endswith("@gmail.com") or row["LastName"].lower() == "doe"
    }
    assert set(ids(result)) == expected
    assert expected


def test_string_equality_ignores_case_and_unescapes_quotes(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    [record_id] = salesforce_sandbox.control.seed(
        [{"sobject": "Contact", "LastName": "O'Brien-Test", "Email": "Q@X.IO"}]
    )

    found = sf.query(r"SELECT Id FROM Contact WHERE LastName = 'o\'brien-test' AND Email = 'q@x.io'")

    assert ids(found) == [record_id]


def test_not_equal_and_not_in_keep_records_whose_field_is_null(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    rows = contacts(salesforce_sandbox)
    not_equal = sf.query("SELECT COUNT() FROM Contact WHERE Title != 'CEO'")["totalSize"]
    not_in = sf.query("SELECT COUNT() FROM Contact WHERE Title NOT IN ('CEO', 'CTO')")["totalSize"]
    no_title = sf.query("SELECT COUNT() FROM Contact WHERE Title = null")["totalSize"]

    assert not_equal == sum(1 for row in rows if row["Title"] != "CEO")
    assert not_in == sum(1 for row in rows if row["Title"] not in ("CEO", "CTO"))
    assert no_title == sum(1 for row in rows if row["Title"] is None) > 0


def test_id_in_accepts_15_and_18_character_ids(salesforce_sandbox: Served, sf: Salesforce) -> None:
    first, second = (row["Id"] for row in contacts(salesforce_sandbox)[:2])

    result = sf.query(f"SELECT Id FROM Contact WHERE Id IN ('{first[:15]}', '{second.lower()}') ORDER BY Id")

    assert ids(result) == sorted([first, second])


def test_parent_fields_come_back_nested_and_empty_lookups_as_null(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    records = sf.query_all("SELECT Id, Account.Name, Account.Website, AccountId FROM Contact")["records"]
    emulator: SalesforceEmulator = salesforce_sandbox.emulator
    accounts = emulator.store.tables["account"].records

    with_account = [record for record in records if record["AccountId"]]
    without = [record for record in records if not record["AccountId"]]
    assert with_account
    assert without
    sample = with_account[0]
    assert list(sample) == ["attributes", "Id", "Account", "AccountId"]
    assert sample["Account"] == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v59.0/sobjects/Account/{sample['AccountId']}",
        },
        "Name": accounts[sample["AccountId"]]["Name"],
        "Website": accounts[sample["AccountId"]]["Website"],
    }
    assert all(record["Account"] is None for record in without)


def test_parent_fields_filter_and_sort(salesforce_sandbox: Served, sf: Salesforce) -> None:
    result = sf.query_all(
        "SELECT Id, Account.Name FROM Contact WHERE Account.Name LIKE 'acme%' ORDER BY Account.Name DESC, Id"
    )

    names = [record["Account"]["Name"] for record in result["records"]]
    assert names
    assert all(name.lower().startswith("acme") for name in names)
    assert names == sorted(names, key=str.casefold, reverse=True)


def test_order_by_puts_nulls_first_unless_told_otherwise(salesforce_sandbox: Served, sf: Salesforce) -> None:
    default = [
        record["Email"] for record in sf.query_all("SELECT Email FROM Contact ORDER BY Email DESC")["records"]
    ]
    last = [
        record["Email"]
        for record in sf.query_all("SELECT Email FROM Contact ORDER BY Email NULLS LAST")["records"]
    ]

    nulls = sum(1 for row in contacts(salesforce_sandbox) if row["Email"] is None)
    assert default[:nulls] == [None] * nulls  # SOQL: "By default, null values are sorted first"
    assert default[nulls:] == sorted(default[nulls:], key=str.casefold, reverse=True)
    assert last[-nulls:] == [None] * nulls
    assert last[:-nulls] == sorted(last[:-nulls], key=str.casefold)


def test_limit_and_offset(salesforce_sandbox: Served, sf: Salesforce) -> None:
    ordered = sorted(row["Id"] for row in contacts(salesforce_sandbox))

    result = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 7 OFFSET 3")

    assert result["totalSize"] == 7
    assert ids(result) == ordered[3:10]


def test_field_and_object_names_are_case_insensitive_and_answered_canonically(sf: Salesforce) -> None:
    record = sf.query("select id, EMAIL, linkedin_url__c from contact limit 1")["records"][0]

    assert list(record) == ["attributes", "Id", "Email", "LinkedIn_URL__c"]


def test_an_unknown_field_is_invalid_field_with_salesforce_message(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query("SELECT Id, Linkedin__c FROM Contact")

    [error] = refused.value.content
    assert error["errorCode"] == "INVALID_FIELD"
    assert error["message"].startswith(
        "\nSELECT Id, Linkedin__c FROM Contact\n           ^\nERROR at Row:1:Column:12\n"
    )
    assert "No such column 'Linkedin__c' on entity 'Contact'" in error["message"]


def test_an_unknown_relationship_is_invalid_field(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query("SELECT Id, Company.Name FROM Contact")

    assert refused.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "Didn't understand relationship 'Company'" in refused.value.content[0]["message"]


@pytest.mark.parametrize(
    ("soql", "token"),
    [
        ("SELECT Id FROM Contact WHERE", "<EOF>"),
        ("SELECT Id FORM Contact", "FORM"),
        ("SELECT Id FROM Contact WHERE Email = 'a' AND Phone = 'b' OR Title = 'c'", "OR"),
        ("SELECT Id FROM Contact LIMIT ten", "ten"),
    ],
)
def test_malformed_soql_is_malformed_query(sf: Salesforce, soql: str, token: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query(soql)

    assert refused.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    assert refused.value.content[0]["message"].endswith(f"unexpected token: {token}")


def test_a_quoted_datetime_is_refused_as_salesforce_does(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query("SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01T00:00:00Z'")

    assert refused.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert (
        "must be of type dateTime and should not be enclosed in quotes" in refused.value.content[0]["message"]
    )


def test_an_unknown_object_is_invalid_type(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query("SELECT Id FROM Contacts")

    assert refused.value.content[0]["errorCode"] == "INVALID_TYPE"


def test_query_all_shows_deleted_records_and_query_never_does(
    salesforce_sandbox: Served, sf: Salesforce
) -> None:
    victim = contacts(salesforce_sandbox)[0]["Id"]
    assert sf.Contact.delete(victim) == 204

    hidden = sf.query(f"SELECT Id FROM Contact WHERE Id = '{victim}' OR IsDeleted = true")
    shown = sf.query(f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{victim}'", include_deleted=True)

    assert hidden["totalSize"] == 0
    assert shown["records"][0]["IsDeleted"] is True
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 299
    assert salesforce_sandbox.control.count(route="/services/data/{version}/queryAll", status=200) == 1


def test_query_all_pages_stay_on_query_all(salesforce_sandbox: Served, sf: Salesforce) -> None:
    page = sf.query("SELECT Id FROM Contact", include_deleted=True, headers=SMALL_PAGES)

    assert page["nextRecordsUrl"].startswith("/services/data/v59.0/queryAll/")
    assert (
        len(list(sf.query_all_iter("SELECT Id FROM Contact", include_deleted=True, headers=SMALL_PAGES)))
        == 300
    )


def test_q_may_encode_spaces_as_plus_or_percent_20(salesforce_sandbox: Served) -> None:
    headers = {"Authorization": f"Bearer {access_token(salesforce_sandbox)}"}
    base = f"{salesforce_sandbox.url}/services/data/v59.0/query"

    plus = requests.get(f"{base}/?q=SELECT+Id+FROM+Account+LIMIT+2", headers=headers, timeout=10)
    percent = requests.get(f"{base}?q=SELECT%20Id%20FROM%20Account%20LIMIT%202", headers=headers, timeout=10)

    assert plus.status_code == percent.status_code == 200
    assert plus.json() == percent.json()
    assert plus.headers["Sforce-Limit-Info"].startswith("api-usage=")
    assert salesforce_sandbox.control.count(route="/services/data/{version}/query", status=200) == 2


def test_an_unknown_locator_is_invalid_query_locator(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query_more("/services/data/v59.0/query/01g000000000000000-200", identifier_is_url=True)

    assert refused.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_a_cursor_keeps_its_snapshot_of_matching_ids(salesforce_sandbox: Served, sf: Salesforce) -> None:
    first = sf.query("SELECT Id FROM Contact ORDER BY Id", headers=SMALL_PAGES)
    salesforce_sandbox.control.seed([{"sobject": "Contact", "LastName": "Late Arrival"}])

    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)

    assert rest["done"] is True
    assert rest["totalSize"] == 300
    assert len(set(ids(first)) | set(ids(rest))) == 300
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 301


def test_count_query_counts_without_records(salesforce_sandbox: Served, sf: Salesforce) -> None:
    result = sf.query("SELECT COUNT() FROM Lead WHERE Company != '[not provided]'")

    emulator: SalesforceEmulator = salesforce_sandbox.emulator
    leads = emulator.store.tables["lead"].records.values()
    assert result == {
        "totalSize": sum(1 for row in leads if row["Company"] != "[not provided]"),
        "done": True,
        "records": [],
    }


def test_the_same_seed_gives_the_same_data(salesforce_sandbox: Served, sf: Salesforce) -> None:
    again = SalesforceEmulator(contacts=300, seed=7)
    other = SalesforceEmulator(contacts=300, seed=8)

    def identity(emulator: SalesforceEmulator, sobject: str) -> list[tuple[Any, ...]]:
        rows = emulator.store.tables[sobject].records.values()
        return [
            (row["Id"], row["Name"], row.get("Email"), row.get("AccountId"), row.get("Website"))
            for row in rows
        ]

    served: SalesforceEmulator = salesforce_sandbox.emulator
    for sobject in ("contact", "lead", "account"):
        assert identity(again, sobject) == identity(served, sobject)
        assert identity(other, sobject) != identity(served, sobject)
    stamps = [format_value(row["SystemModstamp"]) for row in contacts(salesforce_sandbox)]
    assert stamps == [
        record["SystemModstamp"] for record in sf.query_all("SELECT SystemModstamp FROM Contact")["records"]
    ]

"""Salesforce emulator: the SOQL tokenizer and parser, ids, and the index-driven query plan, in process."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from connector.sandbox.salesforce import ids, soql
from connector.sandbox.salesforce.app import SalesforceEmulator
from connector.sandbox.salesforce.errors import SalesforceError
from connector.sandbox.salesforce.query import execute
from connector.sandbox.salesforce.resolve import like_pattern


def test_a_windowed_pull_parses_into_its_parts() -> None:
    query = soql.parse(
        "SELECT Id, Account.Name FROM Contact WHERE SystemModstamp >= 2024-01-02T03:04:05Z "
        "AND SystemModstamp < 2024-01-03T00:00:00.000+01:00 ORDER BY SystemModstamp ASC, Id DESC NULLS LAST LIMIT 10"
    )

    assert [field.path for field in query.fields] == [("Id",), ("Account", "Name")]
    assert query.sobject == "Contact"
    assert isinstance(query.where, soql.BoolOp)
    assert query.where.operator == "AND"
    low, high = (item.value.value for item in query.where.items if isinstance(item, soql.Comparison))
    assert low == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert high == datetime(2024, 1, 2, 23, 0, tzinfo=UTC)
    assert [(item.field.path, item.descending, item.nulls_last) for item in query.order_by] == [
        (("SystemModstamp",), False, False),
        (("Id",), True, True),
    ]
    assert query.limit == 10


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("'it\\'s'", "string", "it's"),
        ("'a\\nb'", "string", "a\nb"),
        ("'50\\%'", "string", "50\\%"),
        ("42", "number", 42),
        ("-1.5", "number", -1.5),
        ("TRUE", "boolean", True),
        ("null", "null", None),
        ("2024-02-29", "date", date(2024, 2, 29)),
        ("2024-02-29T10:00:00-05:00", "datetime", datetime(2024, 2, 29, 15, 0, tzinfo=UTC)),
    ],
)
def test_literals(text: str, kind: str, value: Any) -> None:
    query = soql.parse(f"SELECT Id FROM Contact WHERE Title = {text}")

    assert isinstance(query.where, soql.Comparison)
    assert (query.where.value.kind, query.where.value.value) == (kind, value)


def test_in_not_in_like_and_nested_not() -> None:
    query = soql.parse(
        "select id from lead where not (Email like '%@x.io' or Title not in ('a', 'b')) and Id in ('00Q000000000001')"
    )

    assert isinstance(query.where, soql.BoolOp)
    negated, in_list = query.where.items
    assert isinstance(negated, soql.Not)
    assert isinstance(in_list, soql.Comparison)
    assert in_list.operator == "IN"
    inner = negated.item
    assert isinstance(inner, soql.BoolOp)
    assert [item.operator for item in inner.items if isinstance(item, soql.Comparison)] == ["LIKE", "NOT IN"]


def test_count_query() -> None:
    query = soql.parse("SELECT COUNT() FROM Account")

    assert query.count_only
    assert query.fields == ()


@pytest.mark.parametrize(
    ("text", "message_end"),
    [
        ("SELECT FROM Contact", "unexpected token: FROM"),
        ("SELECT Id FROM Contact WHERE Email = ", "unexpected token: <EOF>"),
        ("SELECT Id FROM Contact WHERE Email = 'open", "mismatched character '<EOF>' expecting '''"),
        ("SELECT Id FROM Contact WHERE (Email = 'a'", "unexpected token: <EOF>"),
        ("SELECT Id FROM Contact ORDER BY", "unexpected token: <EOF>"),
        ("SELECT Id FROM Contact WHERE Email = 'a' extra", "unexpected token: extra"),
        (
            "SELECT Id FROM Contact WHERE Email = 'a\\qb'",
            "Illegal character sequence '\\q' in string literal.",
        ),
        ("SELECT Id FROM Contact WHERE Email ~ 'a'", "no viable alternative at character '~'"),
        ("SELECT Id FROM Contact WHERE A = 1 OR B = 2 AND C = 3", "unexpected token: AND"),
    ],
)
def test_malformed_soql(text: str, message_end: str) -> None:
    with pytest.raises(SalesforceError) as refused:
        soql.parse(text)

    assert refused.value.status == 400
    assert refused.value.error_code == "MALFORMED_QUERY"
    assert refused.value.message.endswith(message_end)


def test_errors_point_at_the_row_and_column() -> None:
    with pytest.raises(SalesforceError) as refused:
        soql.parse("SELECT Id\nFROM Contact\nWHERE Email = = 'x'")

    assert (
        refused.value.message
        == "\nWHERE Email = = 'x'\n              ^\nERROR at Row:3:Column:15\nunexpected token: ="
    )


def test_like_patterns() -> None:
    assert like_pattern("%@gmail.com").fullmatch("Ana@GMAIL.com")
    assert like_pattern("d_e").fullmatch("Doe")
    assert not like_pattern("d_e").fullmatch("Dooe")
    assert like_pattern("100\\%").fullmatch("100%")
    assert not like_pattern("100\\%").fullmatch("1000")
    assert like_pattern("a.b").fullmatch("A.B")
    assert not like_pattern("a.b").fullmatch("axb")


def test_ids_carry_a_case_checksum_and_normalize_from_15_characters() -> None:
    record_id = ids.make_id("003", 7, 12345)

    assert len(record_id) == 18
    assert ids.normalize(record_id[:15]) == record_id
    assert ids.normalize(record_id.lower()) == record_id
    assert ids.normalize("0015000000tHnDa") == "0015000000tHnDaAAK"
    assert ids.normalize("0015000000tHnDaAAA") == "0015000000thndaAAA"  # the suffix decides the case
    assert ids.normalize("0015000000tHnDaBAA") is None  # claims an uppercase digit
    assert ids.normalize("0015000000tHnDa999") is None
    assert ids.normalize("not-an-id") is None


class CountingDict(dict[str, Any]):
    """Counts record reads, to show which rows a query plan touched."""

    reads = 0

    def __getitem__(self, key: str) -> Any:
        self.reads += 1
        return super().__getitem__(key)


def test_a_windowed_query_reads_only_the_window_and_stops_at_its_limit() -> None:
    emulator = SalesforceEmulator(contacts=5000, seed=3)
    table = emulator.store.tables["contact"]
    ordered = sorted(table.records.values(), key=lambda row: (row["SystemModstamp"], row["Id"]))
    low, high = (ordered[position]["SystemModstamp"] for position in (2000, 2100))
    window = [row["Id"] for row in ordered if low <= row["SystemModstamp"] < high]
    counting = CountingDict(table.records)
    table.records = counting
    bounds = (
        f"SystemModstamp >= {low:%Y-%m-%dT%H:%M:%S}.{low.microsecond // 1000:03d}Z AND SystemModstamp < "
        + (f"{high:%Y-%m-%dT%H:%M:%S}.{high.microsecond // 1000:03d}Z")
    )

    _, everything = execute(
        soql.parse(f"SELECT Id FROM Contact WHERE {bounds} ORDER BY SystemModstamp, Id"),
        emulator.store,
        False,
    )
    reads_for_window = counting.reads
    _, newest = execute(
        soql.parse(f"SELECT Id FROM Contact WHERE {bounds} ORDER BY SystemModstamp DESC, Id DESC LIMIT 5"),
        emulator.store,
        False,
    )

    assert everything == window
    assert reads_for_window == len(window)
    assert newest == list(reversed(window))[:5]
    assert counting.reads - reads_for_window == 5

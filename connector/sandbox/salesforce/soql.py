"""SOQL text → syntax tree: a tokenizer and a recursive-descent parser for the subset real syncs send."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal as TypingLiteral

from connector.sandbox.salesforce.errors import SalesforceError

MAX_SOQL_LENGTH = 100_000
KEYWORDS = frozenset(
    {
        *("SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC"),
        *("NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "GROUP", "HAVING", "WITH"),
    }
)
_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<word>[A-Za-z][A-Za-z0-9_]*)
    |(?P<string>')
    |(?P<op>!=|<>|<=|>=|=|<|>|\(|\)|,|\.)
    """,
    re.VERBOSE,
)
# SOQL escapes (soql_sosl guide, "Quoted String Escape Sequences"); \% and \_ stay escaped for LIKE.
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}

LiteralKind = TypingLiteral["string", "number", "boolean", "null", "datetime", "date"]


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, number, datetime, date, op, eof
    text: str
    position: int
    value: object = None

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


@dataclass(frozen=True)
class FieldRef:
    path: tuple[str, ...]
    token: Token


@dataclass(frozen=True)
class Literal:
    kind: LiteralKind
    value: object
    token: Token


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    operator: str  # = != < > <= >= LIKE IN NOT IN
    values: tuple[Literal, ...]

    @property
    def value(self) -> Literal:
        return self.values[0]


@dataclass(frozen=True)
class BoolOp:
    operator: str  # AND, OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Comparison | BoolOp | Not


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool
    nulls_last: bool  # "By default, null values are sorted first" (SOQL ORDER BY doc), whatever the direction


@dataclass(frozen=True)
class Query:
    text: str
    fields: tuple[FieldRef, ...]  # empty for SELECT COUNT()
    count_only: bool
    sobject: str
    sobject_token: Token
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int


def soql_error(text: str, position: int, code: str, message: str, status: int = 400) -> SalesforceError:
    """Salesforce's query errors quote the line, point at the column, then say what is wrong."""
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    row = text.count("\n", 0, position) + 1
    column = position - line_start + 1
    caret = " " * (column - 1) + "^"
    return SalesforceError(status, code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{message}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise soql_error(
                text,
                position,
                "MALFORMED_QUERY",
                f"line 1:{position} no viable alternative at character '{text[position]}'",
            )
        kind = match.lastgroup or ""
        if kind == "string":
            token, position = _read_string(text, position)
            tokens.append(token)
            continue
        lexeme = match.group()
        if kind == "datetime":
            tokens.append(Token(kind, lexeme, position, _parse_datetime(lexeme)))
        elif kind == "date":
            tokens.append(Token(kind, lexeme, position, date.fromisoformat(lexeme)))
        elif kind == "number":
            tokens.append(Token(kind, lexeme, position, float(lexeme) if "." in lexeme else int(lexeme)))
        elif kind != "space":
            tokens.append(Token(kind, lexeme, position))
        position = match.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[Token, int]:
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "'":
            return Token("string", text[start : position + 1], start, "".join(chars)), position + 1
        if char == "\\":
            escaped = text[position + 1 : position + 2]
            if escaped in ("%", "_"):
                chars.append("\\" + escaped)
            elif escaped in _ESCAPES:
                chars.append(_ESCAPES[escaped])
            else:
                raise soql_error(
                    text,
                    start,
                    "MALFORMED_QUERY",
                    f"Invalid string literal '{text[start : position + 2]}'. Illegal character sequence "
                    f"'\\{escaped}' in string literal.",
                )
            position += 2
            continue
        chars.append(char)
        position += 1
    raise soql_error(
        text, start, "MALFORMED_QUERY", f"line 1:{start} mismatched character '<EOF>' expecting '''"
    )


def _parse_datetime(lexeme: str) -> datetime:
    value = datetime.fromisoformat(lexeme.replace("Z", "+00:00"))
    return value.astimezone(UTC)


class Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def unexpected(self, token: Token | None = None) -> SalesforceError:
        token = token or self.current
        return soql_error(self.text, token.position, "MALFORMED_QUERY", f"unexpected token: {token.text}")

    def expect_word(self, *words: str) -> Token:
        if not self.current.is_word(*words):
            raise self.unexpected()
        return self.advance()

    def expect_op(self, op: str) -> Token:
        if self.current.kind != "op" or self.current.text != op:
            raise self.unexpected()
        return self.advance()

    def accept_op(self, op: str) -> bool:
        if self.current.kind == "op" and self.current.text == op:
            self.advance()
            return True
        return False

    # -- grammar -------------------------------------------------------------------------------------
    def parse(self) -> Query:
        self.expect_word("SELECT")
        fields: list[FieldRef] = []
        count_only = False
        if self.current.is_word("COUNT") and self.tokens[self.index + 1].text == "(":
            self.advance()
            self.expect_op("(")
            self.expect_op(")")
            count_only = True
        else:
            fields.append(self.field())
            while self.accept_op(","):
                fields.append(self.field())
        self.expect_word("FROM")
        sobject_token = self.identifier()
        where = None
        if self.current.is_word("WHERE"):
            self.advance()
            where = self.condition()
        order_by: list[OrderItem] = []
        if self.current.is_word("ORDER"):
            self.advance()
            self.expect_word("BY")
            order_by.append(self.order_item())
            while self.accept_op(","):
                order_by.append(self.order_item())
        limit = self.integer_clause("LIMIT")
        offset = self.integer_clause("OFFSET")
        if self.current.kind != "eof":
            raise self.unexpected()
        return Query(
            self.text,
            tuple(fields),
            count_only,
            sobject_token.text,
            sobject_token,
            where,
            tuple(order_by),
            limit,
            offset or 0,
        )

    def integer_clause(self, word: str) -> int | None:
        if not self.current.is_word(word):
            return None
        self.advance()
        token = self.current
        if token.kind != "number" or not isinstance(token.value, int) or token.value < 0:
            raise self.unexpected()
        self.advance()
        return token.value

    def identifier(self) -> Token:
        token = self.current
        if token.kind != "word" or token.text.upper() in KEYWORDS:
            raise self.unexpected()
        return self.advance()

    def field(self) -> FieldRef:
        first = self.identifier()
        path = [first.text]
        while self.accept_op("."):
            path.append(self.identifier().text)
        return FieldRef(tuple(path), first)

    def order_item(self) -> OrderItem:
        field = self.field()
        descending = False
        if self.current.is_word("ASC", "DESC"):
            descending = self.advance().text.upper() == "DESC"
        nulls_last = False
        if self.current.is_word("NULLS"):
            self.advance()
            nulls_last = self.expect_word("FIRST", "LAST").text.upper() == "LAST"
        return OrderItem(field, descending, nulls_last)

    def condition(self) -> Condition:
        # SOQL refuses `a AND b OR c` without parentheses, so one level holds only one kind of operator.
        items = [self.unary()]
        operator: str | None = None
        while self.current.is_word("AND", "OR"):
            word = self.current.text.upper()
            if operator is not None and word != operator:
                raise self.unexpected()
            operator = word
            self.advance()
            items.append(self.unary())
        if operator is None:
            return items[0]
        return BoolOp(operator, tuple(items))

    def unary(self) -> Condition:
        if self.current.is_word("NOT"):
            self.advance()
            return Not(self.unary())
        if self.accept_op("("):
            inner = self.condition()
            self.expect_op(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        field = self.field()
        token = self.current
        if token.kind == "op" and token.text in ("=", "!=", "<>", "<", ">", "<=", ">="):
            self.advance()
            operator = "!=" if token.text == "<>" else token.text
            return Comparison(field, operator, (self.literal(),))
        if token.is_word("LIKE"):
            self.advance()
            return Comparison(field, "LIKE", (self.literal(),))
        negated = False
        if token.is_word("NOT") and self.tokens[self.index + 1].is_word("IN"):
            self.advance()
            negated = True
        if self.current.is_word("IN"):
            self.advance()
            self.expect_op("(")
            values = [self.literal()]
            while self.accept_op(","):
                values.append(self.literal())
            self.expect_op(")")
            return Comparison(field, "NOT IN" if negated else "IN", tuple(values))
        raise self.unexpected()

    def literal(self) -> Literal:
        token = self.current
        if token.kind in ("string", "number", "datetime", "date"):
            self.advance()
            kind: LiteralKind = token.kind  # type: ignore[assignment]
            return Literal(kind, token.value, token)
        if token.is_word("TRUE", "FALSE"):
            self.advance()
            return Literal("boolean", token.text.upper() == "TRUE", token)
        if token.is_word("NULL"):
            self.advance()
            return Literal("null", None, token)
        raise self.unexpected()


def parse(text: str) -> Query:
    if len(text) > MAX_SOQL_LENGTH:
        raise SalesforceError(
            400, "MALFORMED_QUERY", f"SOQL statements cannot be longer than {MAX_SOQL_LENGTH} characters"
        )
    return Parser(text).parse()

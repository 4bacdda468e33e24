"""Reads one SQL statement as DuckDB's own tokenizer splits it, and refuses text the tokenizer and the parser
could read differently.

Role decisions look at tokens, never at raw text: comments and string literals are not code, so `COPY t /*(*/
TO 'f'` and `COPY (SELECT $$($$) TO 'f'` cannot hide a TO. DuckDB's tokenizer (`duckdb.tokenize`) is a
simplified one, though, and is not guaranteed to agree with the parser on unusual input (escape strings,
nested comments). So every token span is checked against a strict grammar of its own: a string token must be
one plain literal, the gap between two tokens only blanks and simple comments. Anything else raises
`Unclassifiable`, and the caller refuses the statement: where the two readings could differ, nothing runs.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import duckdb

# DuckDB's token kinds, as the integers behind duckdb.token_type: comparing the pybind11 enum objects costs
# about 0.7 us per comparison, and tokens() reads every token's kind (a 600-character query has ~100 tokens).
_KIND = duckdb.token_type
_IDENTIFIER, _KEYWORD = _KIND.identifier.value, _KIND.keyword.value
_STRING_CONST, _NUMERIC_CONST, _OPERATOR_KIND = _KIND.string_const.value, _KIND.numeric_const.value, \
    _KIND.operator.value
_STRING = re.compile(r"'(?:[^']|'')*'|\$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)?\$", re.DOTALL)
_QUOTED_IDENTIFIER = re.compile(r'"(?:[^"]|"")*"')
_WORD = re.compile(r"[A-Za-z_][\w$]*")
_NUMBER = re.compile(r"(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|0[bB][01]+")
_OPERATOR = re.compile(r"(?:(?!/\*|--)[-+*/<>=~!@#%^&|`?:;,.()\[\]{}])+|\$\d+")
# Between tokens: blanks, `-- line` comments and `/* block */` comments that contain no `/*` (nesting is
# where tokenizer and parser may disagree, so it is refused).
_GAP = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*(?:(?!/\*)(?!\*/).)*\*/)*", re.DOTALL)
# The grammar each plain token kind is read with (identifiers and keywords are told apart by their text).
_GRAMMARS = {_STRING_CONST: (_STRING, "string"), _NUMERIC_CONST: (_NUMBER, "number"),
             _OPERATOR_KIND: (_OPERATOR, "operator")}


class Unclassifiable(ValueError):
    """The statement's text cannot be read unambiguously; it must not run."""


class Token(NamedTuple):
    """One token. A tuple (not a frozen dataclass): statements are read once per call, token by token, and
    building a tuple costs a third of a frozen dataclass's __init__."""

    kind: str  # "word" (keyword or identifier), "quoted" (quoted identifier), "string", "number", "operator"
    text: str
    # Lower-case name for words and quoted identifiers ('' for anything else); set once, read many times.
    word: str = ""
    offset: int = 0

    @property
    def value(self) -> str:
        """The content of a string literal."""
        text = self.text
        if text.startswith("'"):
            return text[1:-1].replace("''", "'")
        return text[text.index("$", 1) + 1:text.rindex("$", 0, len(text) - 1)]


def tokens(sql: str) -> list[Token]:
    """The statement's tokens; raises Unclassifiable when a span does not have exactly one reading."""
    try:
        raw = duckdb.tokenize(sql)
    except Exception as exc:  # the tokenizer gave up: so do we
        raise Unclassifiable(f"cannot tokenize statement: {exc}") from None
    offsets = [offset for offset, _ in raw] if sql.isascii() else _character_offsets(sql, raw)
    _check_gap(sql, 0, offsets[0] if offsets else len(sql))
    # Each span runs from a token's offset to the next one's (the last to the end): the token, then the gap
    # after it, so every character of the statement is read exactly once.
    ends = offsets[1:]
    ends.append(len(sql))
    result: list[Token] = []
    append = result.append
    for offset, end, (_, kind) in zip(offsets, ends, raw):
        span = sql[offset:end]
        key = (kind.value, span)
        read = _SPANS.get(key)
        if read is None:
            read = _read_span(span, key[0])
            _remember(key, read)
        append(_new_token(Token, read + (offset,)))
    return result


# Token's own __new__ is a Python function; tuple.__new__ builds the same Token in C (a third of the time).
_new_token = tuple.__new__

# Spans already read, by (kind, text): a pure function of the two, and the same keywords, names and blanks
# recur in every statement (reading one with the regular expressions costs ~1.5 us, looking it up ~0.1 us).
# Bounded: short spans only, and emptied when full. Errors are never remembered.
_SPANS: dict[tuple[int, str], tuple[str, str, str]] = {}
_SPANS_MAX_ENTRIES, _SPANS_MAX_LENGTH = 4096, 64


def _remember(key: tuple[int, str], read: tuple[str, str, str]) -> None:
    if len(key[1]) > _SPANS_MAX_LENGTH:
        return
    if len(_SPANS) >= _SPANS_MAX_ENTRIES:
        _SPANS.clear()
    _SPANS[key] = read


def _character_offsets(sql: str, raw: list) -> list[int]:
    """DuckDB reports byte offsets into the UTF-8 text; the checks work on characters."""
    chars = {}
    position = 0
    for index, char in enumerate(sql):
        chars[position] = index
        position += len(char.encode("utf-8"))
    chars[position] = len(sql)
    try:
        return [chars[offset] for offset, _ in raw]
    except KeyError:
        raise Unclassifiable("token offset inside a character") from None


def _check_gap(sql: str, start: int, end: int) -> None:
    # pos/endpos read sql[start:end] without copying it ($ matches at endpos, as at the end of a slice).
    if _GAP.fullmatch(sql, start, end) is None:
        raise Unclassifiable("text between tokens is neither blank nor a simple comment (nested comments and "
                             "unusual literals are refused)")


def _read_span(span: str, kind: int) -> tuple[str, str, str]:
    """(kind name, text, word) of the token at the start of `span`, read by its own strict grammar; the rest of
    the span (up to the next token) must be a gap."""
    grammar = _GRAMMARS.get(kind)
    if grammar is not None:
        pattern, name = grammar
    elif kind == _IDENTIFIER or kind == _KEYWORD:
        # DuckDB reports some operators (`->`, `::`) as keywords.
        if span.startswith('"'):
            pattern, name = _QUOTED_IDENTIFIER, "quoted"
        elif _WORD.match(span):
            pattern, name = _WORD, "word"
        else:
            pattern, name = _OPERATOR, "operator"
    else:  # comments are never reported as tokens by DuckDB 1.5; anything else is unknown
        raise Unclassifiable(f"unknown token kind {_KIND(kind)}")
    match = pattern.match(span)
    if match is None:
        raise Unclassifiable(f"malformed {name} token")
    text = match.group()
    _check_gap(span, len(text), len(span))
    if name == "word":
        return name, text, text.lower()
    if name == "quoted":
        return name, text, text[1:-1].replace('""', '"').lower()
    return name, text, ""


# Words after which a literal may be a credential: settings (SET s3_secret_access_key = '...'), secrets,
# ATTACH options (PASSWORD), PRAGMA values.
_SENSITIVE_WORDS = frozenset({"set", "reset", "pragma", "secret", "attach", "password", "token", "key_id",
                              "secret_access_key", "session_token"})


def redact(sql: str) -> str:
    """SQL for a log record: in statements that may carry credentials every string literal is replaced by
    '***', decided from the tokens (so `$$...$$` strings and odd spacing are covered); SQL that cannot be
    tokenized unambiguously is withheld."""
    lowered = sql.lower()
    if not any(word in lowered for word in _SENSITIVE_WORDS):
        return sql  # most statements: no need to tokenize again for the log
    try:
        found = tokens(sql)
    except Unclassifiable:
        return "<SQL withheld: not readable unambiguously>"
    if not any(token.word in _SENSITIVE_WORDS for token in found):
        return sql
    parts, position = [], 0
    for token in found:
        if token.kind == "string":
            parts.append(sql[position:token.offset])
            parts.append("'***'")
            position = token.offset + len(token.text)
    parts.append(sql[position:])
    return "".join(parts)


def is_sensitive(sql: str) -> bool:
    """Whether a log record about this SQL (an error message echoing it, too) could carry a credential."""
    try:
        return any(token.word in _SENSITIVE_WORDS for token in tokens(sql))
    except Unclassifiable:
        return True

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
from dataclasses import dataclass

import duckdb

_KIND = duckdb.token_type
_STRING = re.compile(r"'(?:[^']|'')*'|\$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)?\$", re.DOTALL)
_QUOTED_IDENTIFIER = re.compile(r'"(?:[^"]|"")*"')
_WORD = re.compile(r"[A-Za-z_][\w$]*")
_NUMBER = re.compile(r"(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|0[bB][01]+")
_OPERATOR = re.compile(r"(?:(?!/\*|--)[-+*/<>=~!@#%^&|`?:;,.()\[\]{}])+|\$\d+")
# Between tokens: blanks, `-- line` comments and `/* block */` comments that contain no `/*` (nesting is
# where tokenizer and parser may disagree, so it is refused).
_GAP = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*(?:(?!/\*)(?!\*/).)*\*/)*", re.DOTALL)


class Unclassifiable(ValueError):
    """The statement's text cannot be read unambiguously; it must not run."""


@dataclass(frozen=True)
class Token:
    kind: str  # "word" (keyword or identifier), "quoted" (quoted identifier), "string", "number", "operator"
    text: str
    offset: int = 0

    @property
    def word(self) -> str:
        """Lower-case name for words and quoted identifiers ('' for anything else)."""
        if self.kind == "word":
            return self.text.lower()
        if self.kind == "quoted":
            return self.text[1:-1].replace('""', '"').lower()
        return ""

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
    # DuckDB reports byte offsets into the UTF-8 text; the checks below work on characters.
    if not sql.isascii():
        chars = {}
        position = 0
        for index, char in enumerate(sql):
            chars[position] = index
            position += len(char.encode("utf-8"))
        chars[position] = len(sql)
        try:
            raw = [(chars[offset], kind) for offset, kind in raw]
        except KeyError:
            raise Unclassifiable("token offset inside a character") from None
    result: list[Token] = []
    position = 0
    for index, (offset, kind) in enumerate(raw):
        _check_gap(sql, position, offset)
        end = raw[index + 1][0] if index + 1 < len(raw) else len(sql)
        span = sql[offset:end]
        token = _read(span, kind, offset)
        result.append(token)
        position = offset + len(token.text)
    _check_gap(sql, position, len(sql))
    return result


def _check_gap(sql: str, start: int, end: int) -> None:
    if start > end:
        raise Unclassifiable("overlapping tokens")
    gap = sql[start:end]
    if _GAP.fullmatch(gap) is None:
        raise Unclassifiable("text between tokens is neither blank nor a simple comment (nested comments and "
                             "unusual literals are refused)")


def _read(span: str, kind, offset: int) -> Token:
    """The token at the start of `span` (the text up to the next token), read by its own strict grammar."""
    if kind == _KIND.string_const:
        pattern, name = _STRING, "string"
    elif kind == _KIND.numeric_const:
        pattern, name = _NUMBER, "number"
    elif kind == _KIND.operator:
        pattern, name = _OPERATOR, "operator"
    elif kind in (_KIND.identifier, _KIND.keyword):
        # DuckDB reports some operators (`->`, `::`) as keywords.
        if span.startswith('"'):
            pattern, name = _QUOTED_IDENTIFIER, "quoted"
        elif _WORD.match(span):
            pattern, name = _WORD, "word"
        else:
            pattern, name = _OPERATOR, "operator"
    else:  # comments are never reported as tokens by DuckDB 1.5; anything else is unknown
        raise Unclassifiable(f"unknown token kind {kind}")
    match = pattern.match(span)
    if match is None:
        raise Unclassifiable(f"malformed {name} token")
    return Token(name, match.group(0), offset)


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

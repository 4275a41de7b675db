"""Literal values of Terraform variables: ``*.tfvars`` assignments and ``variable`` block defaults. Pure.

The capacity check reads an environment's compute settings offline, from ``terraform/environments/
<env>.tfvars`` and the defaults in ``terraform/variables.tf``. python-hcl2 is not a dependency of the
CLI, and only literals matter here (strings, numbers, booleans, null, lists and objects of those), so
this is a small tokenizer and recursive-descent reader of that subset of HCL2. An expression it does
not read (a reference, a function call, a template, a heredoc) leaves that one attribute out rather
than failing the file: such values are never instance type lists or node counts in this repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stepspot.errors import ConfigurationError

_TOKEN = re.compile(
    r"""
    (?P<newline>\n)
  | (?P<space>[ \t\r]+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
  | (?P<heredoc><<-?[A-Za-z_]+)
  | (?P<punct>[{}\[\](),=:.?<>!*/+%&|-])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_OPEN, _CLOSE = "{[(", "}])"


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int


class _Unsupported(Exception):
    """An expression that is not a literal."""


def _tokens(text: str, source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position, line = 0, 1
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConfigurationError(
                f"{source}, line {line}: cannot read {text[position:].split(chr(10), 1)[0][:20]!r}; fix the HCL "
                "syntax there"
            )
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "heredoc":  # skip to the closing marker; the attribute becomes unsupported
            marker = value.lstrip("<-")
            end = re.compile(rf"^\s*{re.escape(marker)}\s*$", re.MULTILINE).search(text, match.end())
            stop = end.end() if end else len(text)
            tokens.append(_Token("heredoc", text[position:stop], line))
            line += text.count("\n", position, stop)
            position = stop
            continue
        if kind not in ("space", "comment"):
            tokens.append(_Token(kind, value, line))
        line += value.count("\n")
        position = match.end()
    return tokens


class _Reader:
    def __init__(self, tokens: list[_Token], source: str) -> None:
        self.tokens = tokens
        self.source = source
        self.index = 0

    def peek(self, skip_newlines: bool = True) -> _Token | None:
        index = self.index
        while index < len(self.tokens):
            token = self.tokens[index]
            if not (skip_newlines and token.kind == "newline"):
                return token
            index += 1
        return None

    def next(self, skip_newlines: bool = True) -> _Token:
        while self.index < len(self.tokens):
            token = self.tokens[self.index]
            self.index += 1
            if not (skip_newlines and token.kind == "newline"):
                return token
        raise ConfigurationError(f"{self.source}: unexpected end of file; close every bracket and quote")

    def expect(self, text: str) -> None:
        token = self.next()
        if token.text != text:
            raise ConfigurationError(f"{self.source}, line {token.line}: expected {text!r}, found {token.text!r}")

    # -- values -----------------------------------------------------------------------------------

    def value(self) -> Any:
        token = self.next()
        if token.kind == "string":
            if "${" in token.text or "%{" in token.text:
                raise _Unsupported
            return _unquote(token.text)
        if token.kind == "number":
            return float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
        if token.kind == "ident" and token.text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token.text]
        if token.text == "[":
            items: list[Any] = []
            while True:
                upcoming = self.peek()
                if upcoming is not None and upcoming.text == "]":
                    self.next()
                    return items
                items.append(self.value())
                separator = self.next()
                if separator.text == "]":
                    return items
                if separator.text != ",":
                    raise _Unsupported
        if token.text == "{":
            mapping: dict[str, Any] = {}
            while True:
                key_token = self.next()
                if key_token.text == "}":
                    return mapping
                if key_token.kind not in ("ident", "string"):
                    raise _Unsupported
                key = _unquote(key_token.text) if key_token.kind == "string" else key_token.text
                if self.next().text not in ("=", ":"):
                    raise _Unsupported
                mapping[key] = self.value()
                following = self.peek()
                if following is not None and following.text == ",":
                    self.next()
        raise _Unsupported

    def skip_expression(self) -> None:
        """Consume the rest of an attribute's expression: up to a newline outside brackets."""
        depth = 0
        while self.index < len(self.tokens):
            token = self.tokens[self.index]
            if token.kind == "newline" and depth == 0:
                return
            if depth == 0 and token.text == "}":
                return  # the end of the enclosing block
            self.index += 1
            if token.text in _OPEN or token.text == "${":
                depth += 1
            elif token.text in _CLOSE:
                depth -= 1

    def attribute_value(self, start: int) -> tuple[bool, Any]:
        """Read one attribute's value; (False, None) when it is not a literal (then skipped)."""
        try:
            value = self.value()
            following = self.peek(skip_newlines=False)
            if following is not None and following.kind != "newline" and following.text != "}":
                raise _Unsupported  # e.g. `1 + 2`, `var.x`, a conditional: not a plain literal
            return True, value
        except _Unsupported:
            self.index = start
            self.skip_expression()
            return False, None

    # -- bodies -----------------------------------------------------------------------------------

    def body(self, until_brace: bool) -> tuple[dict[str, Any], list[tuple[list[str], dict[str, Any]]]]:
        """Attributes (literals only) and nested blocks ``(labels, attributes)`` of a body."""
        attributes: dict[str, Any] = {}
        blocks: list[tuple[list[str], dict[str, Any]]] = []
        while True:
            token = self.peek()
            if token is None:
                if until_brace:
                    raise ConfigurationError(f"{self.source}: a block is not closed; add the missing '}}'")
                return attributes, blocks
            if token.text == "}":
                if not until_brace:
                    raise ConfigurationError(f"{self.source}, line {token.line}: unexpected '}}'")
                self.next()
                return attributes, blocks
            name = self.next()
            if name.kind != "ident":
                raise ConfigurationError(
                    f"{self.source}, line {name.line}: expected a name, found {name.text!r}; fix the HCL syntax there"
                )
            following = self.next()
            if following.text == "=":
                readable, value = self.attribute_value(self.index)
                if readable:
                    attributes[name.text] = value
                continue
            labels = [name.text]
            while following.kind in ("string", "ident"):
                labels.append(_unquote(following.text) if following.kind == "string" else following.text)
                following = self.next()
            if following.text != "{":
                raise ConfigurationError(
                    f"{self.source}, line {following.line}: expected '=' or a block after {name.text!r}"
                )
            inner, nested = self.body(until_brace=True)
            blocks.append((labels, inner))
            blocks.extend(([*labels, *child_labels], child) for child_labels, child in nested)


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def parse_tfvars(text: str, source: str = "tfvars") -> dict[str, Any]:
    """The literal assignments of a ``.tfvars`` file (``name = value``)."""
    attributes, _ = _Reader(_tokens(text, source), source).body(until_brace=False)
    return attributes


def variable_defaults(text: str, source: str = "variables.tf") -> dict[str, Any]:
    """``default`` of every ``variable "name" { ... }`` block whose default is a literal."""
    _, blocks = _Reader(_tokens(text, source), source).body(until_brace=False)
    defaults: dict[str, Any] = {}
    for labels, attributes in blocks:
        if len(labels) == 2 and labels[0] == "variable" and "default" in attributes:
            defaults[labels[1]] = attributes["default"]
    return defaults

"""Stage 1 of 3: turn formula text into tokens that remember where they came from.

Every :class:`Token` carries ``start``/``end`` offsets into the source, so later stages can
point at the offending characters with :func:`r2d2formula.errors.mark_span`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import FormulaSyntaxError, mark_span

__all__ = ["TokenKind", "Token", "OPERATOR_SYMBOLS", "scan"]


class TokenKind(enum.Enum):
    """Kinds of tokens."""

    NAME = "name"
    NUMBER = "number"
    STRING = "string"
    BACKTICK = "backtick"
    OPERATOR = "operator"
    LPAREN = "("
    RPAREN = ")"
    LBRACE = "{"
    RBRACE = "}"
    LBRACKET = "["
    RBRACKET = "]"
    COMMA = ","
    END = "end"


@dataclass(frozen=True)
class Token:
    """One token: its kind, its text and its span ``source[start:end]``.

    For :attr:`TokenKind.BACKTICK` and :attr:`TokenKind.STRING` tokens ``value`` is the text
    between the quotes; otherwise it equals the text.
    """

    kind: TokenKind
    value: str
    start: int
    end: int


#: Every operator the scanner knows, longest first so that ``**`` wins over ``*``. Which of them
#: the formula grammar accepts is decided by the parser's operator table.
OPERATOR_SYMBOLS: tuple[str, ...] = (
    "**", "||", "//", "==", "!=", "<=", ">=",
    "~", "|", "+", "-", "*", "/", ":", "^", "%", "<", ">", "=", "&", "!", "@", ".",
)

_PUNCTUATION = {
    "(": TokenKind.LPAREN, ")": TokenKind.RPAREN, "{": TokenKind.LBRACE, "}": TokenKind.RBRACE,
    "[": TokenKind.LBRACKET, "]": TokenKind.RBRACKET, ",": TokenKind.COMMA,
}

_HINTS = {
    "$": "refer to a column by its name ('x'), not as 'data$x'",
    "#": "comments are not allowed in formulas",
    ";": "write one formula, joining terms with '+'",
    "?": "remove it",
}


def _is_name_start(ch: str) -> bool:
    return ch == "_" or ch.isalpha()


def _is_name_char(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def _scan_name(source: str, i: int) -> int:
    """Scan an identifier, allowing inner dots (``np.log``, R-style ``my.var``)."""
    n = len(source)
    while i < n:
        if _is_name_char(source[i]):
            i += 1
        elif source[i] == "." and i + 1 < n and _is_name_char(source[i + 1]):
            i += 1
        else:
            break
    return i


def _scan_number(source: str, i: int) -> int:
    n = len(source)
    while i < n and (source[i].isdigit() or source[i] in "._"):
        i += 1
    if i < n and source[i] in "eE":
        j = i + 1
        if j < n and source[j] in "+-":
            j += 1
        if j < n and source[j].isdigit():
            i = j
            while i < n and source[i].isdigit():
                i += 1
    return i


def _scan_quoted(source: str, i: int, quote: str, what: str) -> int:
    j = source.find(quote, i + 1)
    if j < 0:
        raise FormulaSyntaxError(
            f"unclosed {what}\n{mark_span(source, i)}\nAdd the closing {quote} after the name."
        )
    return j + 1


def scan(source: str) -> list[Token]:
    """Split formula text into tokens.

    Parameters
    ----------
    source : str
        The formula.

    Returns
    -------
    list of Token
        The tokens, ending with one :attr:`TokenKind.END` token.

    Raises
    ------
    FormulaSyntaxError
        On a character that has no meaning in a formula (``$``, ``#``, ...) or an unclosed
        string or backtick.

    Examples
    --------
    >>> [t.value for t in scan("y ~ x + (1 | g)")]
    ['y', '~', 'x', '+', '(', '1', '|', 'g', ')', '']
    >>> scan("`my col`")[0]
    Token(kind=<TokenKind.BACKTICK: 'backtick'>, value='my col', start=0, end=8)
    """
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch.isspace():
            i += 1
            continue
        if _is_name_start(ch):
            j = _scan_name(source, i)
            tokens.append(Token(TokenKind.NAME, source[i:j], i, j))
        elif ch.isdigit() or (ch == "." and i + 1 < n and source[i + 1].isdigit()):
            j = _scan_number(source, i)
            tokens.append(Token(TokenKind.NUMBER, source[i:j], i, j))
        elif ch == "`":
            j = _scan_quoted(source, i, "`", "backtick-quoted name")
            tokens.append(Token(TokenKind.BACKTICK, source[i + 1 : j - 1], i, j))
        elif ch in "'\"":
            j = _scan_quoted(source, i, ch, "string")
            tokens.append(Token(TokenKind.STRING, source[i + 1 : j - 1], i, j))
        elif ch in _PUNCTUATION:
            j = i + 1
            tokens.append(Token(_PUNCTUATION[ch], ch, i, j))
        else:
            symbol = next((op for op in OPERATOR_SYMBOLS if source.startswith(op, i)), None)
            if symbol is None:
                hint = _HINTS.get(ch, "remove it or quote the column name with backticks")
                raise FormulaSyntaxError(
                    f"unexpected character {ch!r} in formula\n{mark_span(source, i)}\n"
                    f"{hint[0].upper()}{hint[1:]}."
                )
            j = i + len(symbol)
            tokens.append(Token(TokenKind.OPERATOR, symbol, i, j))
        i = j
    tokens.append(Token(TokenKind.END, "", n, n))
    return tokens

"""Outside text made harmless where people read it: terminals and spreadsheets.

Names, file names and CSV cells come from outside (a CRM export, a photo
folder, an ID card) and are stored exactly as given.  Only their *output* is
neutralised:

- :func:`console_text` for terminal lines: control characters (ANSI escape
  sequences, carriage returns that overwrite a line, NUL) and the Unicode
  bidirectional controls that reorder what a reader sees ("Trojan Source") are
  shown as visible escapes (``\\x1b``, ``\\u202e``).
- :func:`csv_cell` for CSV files a person opens in Excel or WPS: a text cell
  that starts with ``=``, ``+``, ``-``, ``@`` (or their fullwidth forms), a tab or a
  carriage return
  would run as a formula ("CSV injection"); it gets a leading apostrophe, the
  spreadsheet convention for "this is text".  Control and bidi characters are
  escaped as for the console.

JSON output is left exact: it is for programs, and its own escaping applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# C0 and C1 controls, DEL, the bidi embedding/override/isolate/mark characters,
# and the line/paragraph separators that start a new line in some terminals.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# The fullwidth forms too: spreadsheets with a Chinese or Japanese input method take them as formulas.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def console_text(value: object) -> str:
    """``str(value)`` with every control and bidi character shown as an escape."""
    return _UNSAFE.sub(_escape, str(value))


def csv_cell(value: Any) -> Any:
    """A value safe to write into a CSV cell (non-strings are returned as they are)."""
    if not isinstance(value, str):
        return value
    text = value
    if text.startswith(FORMULA_START):
        text = "'" + text
    return _UNSAFE.sub(_escape, text)


def csv_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`csv_cell` applied to every value of a ``csv.DictWriter`` row."""
    return {key: csv_cell(value) for key, value in row.items()}

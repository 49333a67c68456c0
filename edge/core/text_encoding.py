"""Decoding text files from outside (CSV exports): UTF-8 with or without BOM, else GB18030.

Excel in a Chinese bank saves "CSV" as GBK; GB18030 is its superset (and the
national standard), so it reads those files too.  UTF-8 is tried first: a file
that decodes as UTF-8 is almost certainly UTF-8, while GB18030 accepts many
byte sequences that are not meant as Chinese.  A UTF-16 file (Excel's "Unicode
text") is recognised by its byte-order mark.  ``encoding`` given by the user
(``--encoding``) is used as it is.  Errors name the encodings tried and where
decoding failed; they never carry a raw codec traceback.
"""

from __future__ import annotations

import codecs

from edge.core.errors import BranchEdgeError

AUTO_ENCODINGS = ("utf-8", "gb18030")


class TextEncodingError(BranchEdgeError):
    """A text file that does not decode in the given (or any detected) encoding."""


def decode_text(raw: bytes, source: str, encoding: str | None = None) -> tuple[str, str]:
    """(text, the encoding that decoded it); TextEncodingError otherwise."""
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError as err:
            raise TextEncodingError(f"unknown encoding {encoding!r} (e.g. utf-8, gb18030)") from err
        return _decode(raw, source, "utf-8-sig" if name == "utf-8" else name), name
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(raw, source, "utf-16"), "utf-16"
    first_error = None
    for name in AUTO_ENCODINGS:
        try:
            return raw.decode("utf-8-sig" if name == "utf-8" else name), name
        except UnicodeDecodeError as err:
            first_error = first_error or err
    assert first_error is not None
    raise TextEncodingError(
        f"{source}: neither UTF-8 nor GB18030 text (byte 0x{raw[first_error.start]:02x} at offset "
        f"{first_error.start} is not UTF-8); save it as UTF-8 or give --encoding")


def _decode(raw: bytes, source: str, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise TextEncodingError(f"{source}: not valid {encoding} text "
                                f"(offset {err.start}: {err.reason})") from err

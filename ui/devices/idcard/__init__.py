"""ID-card readers at the counter: protocol, card parsing, photo decoders, simulator.

API for the teller page and the authorization client
---------------------------------------------------

Read one card (blocking; CLI and scripts)::

    from ui.devices.idcard.reader import read_card
    card = read_card("/dev/ttyUSB0", timeout=5.0, decoder=None)   # -> IdCard
    card.photo_jpeg        # bytes | None (None without a photo decoder; see card.photo_error)
    card.to_dict()         # JSON-able text fields, no photo bytes, no fingerprint
    card.masked_id         # '4403**********1512' for screens and logs

Poll a reader from the UI (non-blocking; the worker thread owns the port)::

    from ui.devices.idcard.reader import IdReader, open_transport
    reader = IdReader(lambda: open_transport(port), decoder)
    reader.start()
    event = reader.poll()  # None, or ReaderEvent(kind='card'|'error'|'status', status, card, error)
    reader.status          # connecting | waiting | reading | remove_card | error | stopped
    reader.stop()

Validate (the same pure rules run at the edge, from ``edge.core.idcard_rules``)::

    from ui.devices.idcard import validate_card
    problems = validate_card(card, today)      # -> list[CardProblem]; [] = passed
    p.code, p.message_zh, p.message_en, p.severity   # severity 'error' or 'warning'

Errors: every reader/card failure is ``CardReadError`` (a ``BranchEdgeError``)
with a stable ``code`` (``no_card``, ``card_not_removed``, ``timeout``,
``bad_frame``, ``truncated``, ``bad_reply``, ``read_failed``, ``port_unavailable``,
``bad_port``, ``reader_fault``, ...) and a message for the teller; nothing else
comes out of the protocol layer, and ``IdReader`` reconnects after any failure.
Ports are serial devices only: a pyserial URL (``socket://`` ...) is refused unless
``BRANCH_PAD_IDCARD_ALLOW_URLS=1`` (tests only).  Passports: ``ui.devices.idcard.mrz.parse_mrz(text) -> Mrz``.
Photo decoders: ``ui.devices.idcard.photo.load_decoder("vendor:/path/libwlt.so")`` or
``"simulator:cards.toml"``.  Simulator: ``ui.devices.idcard.simulator.PtySimulator``.
"""

from __future__ import annotations

import datetime as dt

from edge.core.idcard_rules import CardFacts, CardProblem, has_errors, validate_facts
from ui.devices.idcard.card import CardReadError, IdCard

__all__ = ["CardFacts", "CardProblem", "CardReadError", "IdCard", "has_errors", "validate_card"]


def validate_card(card: IdCard, today: dt.date | None = None) -> list[CardProblem]:
    """Every rule problem of ``card`` (empty when the card passed)."""
    return validate_facts(card.facts(), today or dt.date.today())

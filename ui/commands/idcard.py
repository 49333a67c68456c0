"""``branch-pad idcard``: read a card, run the reader simulator, check a passport MRZ."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from edge.core.errors import BranchEdgeError
from edge.core.files import UnsafeFileError, read_regular_file
from edge.core.idcard_rules import LONG_TERM, mask_id_number, parse_date
from edge.core.safe_output import console_text
from ui.devices.idcard import has_errors, validate_card
from ui.devices.idcard.card import CardReadError
from ui.devices.idcard.mrz import MrzError, parse_mrz
from ui.devices.idcard.photo import load_decoder
from ui.devices.idcard.reader import decode_photo, read_card
from ui.devices.idcard.samples import sample_cards, write_deck
from ui.devices.idcard.sdk import SdtApiReader, TermbReader
from ui.devices.idcard.simulator import MAX_PHOTO_BYTES, PtySimulator, SimulatorError, load_cards

EXIT_OK, EXIT_RULES_FAILED, EXIT_USER_ERROR = 0, 1, 2
log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("idcard", help="ID-card reader: read a card, simulate a reader, check MRZ")
    sub = parser.add_subparsers(dest="idcard_command", metavar="ACTION", required=True)

    read = sub.add_parser("read", help="read one card from a reader (or the simulator) and print it")
    read.add_argument("--port", help="serial port / pty path (or hidraw path with --hid)")
    read.add_argument("--hid", action="store_true", help="the reader is the HID variant (no preamble)")
    read.add_argument("--sdk", type=Path, help="read through a vendor SDK library instead of the port")
    read.add_argument("--sdk-kind", choices=("sdt", "termb"), default="sdt", help="SDK flavour (default sdt)")
    read.add_argument("--sdk-port", type=int, default=1001, help="SDK port: 1-16 COM, 1001-1016 USB")
    read.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a card (default 5)")
    read.add_argument("--decoder", help="photo decoder: vendor:/path/libwlt.so[:entry] or simulator:FILE")
    read.add_argument("--photo-out", type=Path, help="write the decoded photo (JPEG) to this file")
    read.add_argument("--appended-address", action="store_true", help="also read the appended address")
    read.add_argument("--today", type=dt.date.fromisoformat, help="validate as of this date (YYYY-MM-DD)")
    read.add_argument("--json", action="store_true", help="print JSON")
    read.add_argument("--show-id-number", action="store_true",
                      help="print the full ID and pass numbers (default: masked, as the tablet shows them)")
    read.set_defaults(func=_guarded(run_read))

    simulate = sub.add_parser("simulate", help="run the reader simulator on a pseudo-terminal")
    simulate.add_argument("--cards", type=Path, required=True, help="card file (TOML or JSON)")
    simulate.add_argument("--fault", action="append", default=[], metavar="NAME[=VALUE]",
                          help="inject a fault (repeatable), e.g. slow=0.5, card_not_removed")
    simulate.add_argument("--json", action="store_true", help="print the port as JSON")
    simulate.set_defaults(func=_guarded(run_simulate))

    samples = sub.add_parser("samples", help="write a simulator card file of fictional sample cards")
    samples.add_argument("--out", type=Path, required=True, help="directory for cards.json and photos")
    samples.add_argument("--photo", type=Path, action="append", default=[],
                         help="face photo for the next card, in order (repeatable); drawn faces otherwise")
    samples.add_argument("--json", action="store_true", help="print JSON")
    samples.set_defaults(func=_guarded(run_samples))

    mrz = sub.add_parser("mrz", help="parse and check a passport/ID MRZ (TD3 2x44, TD1 3x30)")
    mrz.add_argument("file", type=Path, help="text file with the MRZ lines, '-' for stdin")
    mrz.add_argument("--json", action="store_true", help="print JSON")
    mrz.set_defaults(func=_guarded(run_mrz))


def _guarded(func: Any) -> Any:
    """Every failure is one line and exit 2 ("nothing read"); exit 1 stays reserved for a
    card that was read but failed a rule.  An unexpected exception (a bug, not a reader
    fault: the protocol layer raises CardReadError only) is logged with its traceback
    and still exits 2 with code ``internal_error``."""
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except BranchEdgeError as exc:
            return _fail(args, getattr(exc, "code", ""), str(exc))
        except Exception as exc:
            log.debug("branch-pad idcard failed", exc_info=exc)
            return _fail(args, "internal_error", f"unexpected {type(exc).__name__}: {exc}")
    return run


def _fail(args: argparse.Namespace, code: str, message: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": code, "message": message}, ensure_ascii=False))
    print(console_text(f"branch-pad idcard: {message}"), file=sys.stderr)
    return EXIT_USER_ERROR


def _read(args: argparse.Namespace) -> Any:

    decoder = load_decoder(args.decoder)
    if args.sdk is not None:
        kind = SdtApiReader if args.sdk_kind == "sdt" else TermbReader
        return decode_photo(kind(args.sdk, args.sdk_port).read_card(), decoder)
    if not args.port:
        raise CardReadError("give --port PATH (serial/pty/hidraw) or --sdk LIBRARY", "bad_port")
    return read_card(args.port, args.timeout, decoder, hid=args.hid,
                     appended_address=args.appended_address)


def run_read(args: argparse.Namespace) -> int:
    card = _read(args)
    problems = validate_card(card, args.today)
    photo = None
    if args.photo_out is not None and card.photo_jpeg is not None:
        args.photo_out.write_bytes(card.photo_jpeg)
        photo = str(args.photo_out)
    if args.json:
        shown = card.to_dict() if args.show_id_number else masked_numbers(card.to_dict())
        out = {"ok": True, "card": shown | {"masked_id": card.masked_id, "photo": photo,
                                            "id_number_masked": not args.show_id_number},
               "problems": [{"code": p.code, "severity": p.severity, "message_zh": p.message_zh,
                             "message_en": p.message_en} for p in problems],
               "valid": not has_errors(problems)}
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        _print_card(card, problems, photo, args.show_id_number)
    return EXIT_RULES_FAILED if has_errors(problems) else EXIT_OK


GENDER_WORDS = {"0": ("未知", "unknown"), "1": ("男", "male"), "2": ("女", "female"),
                "9": ("未说明", "unspecified")}


def gender_words(code: str) -> str:
    """GB/T 2261.1 code in words, both languages: '1' -> '男 / male'; an odd code as it is."""
    words = GENDER_WORDS.get(code.strip())
    return f"{words[0]} / {words[1]}" if words else f"code {code!r}"


def date_words(text: str) -> str:
    """YYYYMMDD as an ISO date, '长期' as '长期 / long-term'; anything else as it is."""
    if text.strip() == LONG_TERM:
        return f"{LONG_TERM} / long-term"
    day = parse_date(text)
    return day.isoformat() if day is not None else text


def masked_numbers(card: dict[str, Any]) -> dict[str, Any]:
    """The card's JSON with the ID and pass numbers masked as the tablet masks them."""
    out = dict(card)
    out["id_number"] = mask_id_number(str(card.get("id_number", "")))
    if card.get("pass_number"):
        out["pass_number"] = mask_id_number(str(card["pass_number"]))
    return out


def _print_card(card: Any, problems: list[Any], photo: str | None, show_numbers: bool = False) -> None:
    print(f"{card.type_name} / {card.type_name_en}")
    number = card.id_number if show_numbers else card.masked_id
    pass_number = card.pass_number if show_numbers else mask_id_number(card.pass_number)
    for label, value in (("name", card.name), ("name_en", card.name_en),
                         ("gender", gender_words(card.gender)), ("nation", card.nation),
                         ("birth", date_words(card.birth)), ("id_number", number),
                         ("valid", f"{date_words(card.valid_from)} - {date_words(card.valid_to)}"),
                         ("authority", card.authority), ("nationality", card.nationality),
                         ("pass_number", pass_number)):
        if value:  # chip text is checked for C0 controls; bidi and C1 are escaped here
            print(console_text(f"  {label:12} {value}"))
    print(f"  {'photo':12} {photo or ('decoded' if card.photo_jpeg else card.photo_error)}")
    for p in problems:
        print(f"  [{p.severity}] {p.code}: {p.message_zh} / {p.message_en}")
    if not problems:
        print("  all checks passed")


def _parse_faults(items: list[str]) -> dict[str, float]:
    faults = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            faults[name] = float(value) if value else 1.0
        except ValueError:
            raise SimulatorError(f"fault {item!r}: the value must be a number") from None
    return faults


def run_simulate(args: argparse.Namespace) -> int:
    deck = load_cards(args.cards)
    with PtySimulator(deck) as sim:
        for name, value in _parse_faults(args.fault).items():
            sim.sim.set_fault(name, value)
        if args.json:
            print(json.dumps({"port": sim.path, "cards": len(deck.cards)}), flush=True)
        else:
            print(sim.path, flush=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
    return EXIT_OK


def run_samples(args: argparse.Namespace) -> int:
    try:
        photos = [read_regular_file(path, MAX_PHOTO_BYTES, "photo") for path in args.photo]
    except UnsafeFileError as exc:
        raise SimulatorError(f"cannot read the photo: {exc}") from exc
    cards = sample_cards(dt.date.today())
    path = write_deck(args.out, cards, photos)
    if args.json:
        print(json.dumps({"cards_file": str(path), "cards": len(cards)}))
    else:
        print(path)
    return EXIT_OK


def run_mrz(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise MrzError(f"cannot read {args.file}: {exc}") from exc
    mrz = parse_mrz(text)
    if args.json:
        fields = {k: v for k, v in vars(mrz).items() if k != "problems"}
        print(json.dumps({"ok": True, "mrz": fields, "valid": mrz.valid,
                          "problems": [p.code for p in mrz.problems]}, indent=2))
    else:
        print(f"{mrz.format} {mrz.document_code} {mrz.issuing_state} {mrz.surname}, {mrz.given_names}")
        failed = ", ".join(p.code for p in mrz.problems)
        print("  all check digits valid" if mrz.valid else f"  failed: {failed}")
    return EXIT_OK if mrz.valid else EXIT_RULES_FAILED

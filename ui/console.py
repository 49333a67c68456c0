"""``branch-pad --console``: the arrivals feed as lines on a terminal (headless machines, demo)."""

from __future__ import annotations

import queue
import time
from typing import TextIO

from mqtt.messages import Arrival, Claim, Message, Retraction, utc_now
from ui.state.config import PadConfig
from ui.state.feed import ArrivalFeed, ClaimBook
from ui.state.i18n import Texts, customer_title
from ui.state.link import PadLink


def arrival_line(arrival: Arrival, feed: ArrivalFeed, texts: Texts) -> str:
    c = arrival.customer
    when = arrival.seen_at.astimezone().strftime("%H:%M:%S")
    mine = f" [{texts('feed.mine')}]" if feed.is_mine(arrival) else ""
    first = arrival.recommendations[0].name if arrival.recommendations else "-"
    until = arrival.expires_at.astimezone().strftime("%H:%M")
    title, missing = customer_title(c, texts)
    name = f"{title} [{missing}]" if missing else title
    tier = f" ({c.tier})" if c.tier.strip() else ""
    return (f"{when}  + {name}{tier}{mine}  {texts('card.rm')}: {arrival.assigned_rm or '-'}"
            f"  {texts('card.recommendations')}: {first}  → {until}")


class ConsoleFeed:
    """Prints what an RM PAD would show; the same feed and claim rules as the window."""

    def __init__(self, config: PadConfig, texts: Texts, out: TextIO) -> None:
        self.feed = ArrivalFeed(config.effective_rm_id)
        self.claims = ClaimBook(config.effective_rm_id)
        self.texts = texts
        self.out = out
        self.shown = 0

    def handle(self, message: Message, replayed: bool = False) -> None:
        """Print ``message``; ``replayed`` (from the journal at start) is not counted in ``shown``."""
        if isinstance(message, Arrival) and self.feed.add(message, utc_now()):
            self.shown += 0 if replayed else 1
            self._print(arrival_line(message, self.feed, self.texts))
        elif isinstance(message, Claim):
            state = self.claims.apply(message)
            entry = self.feed.by_visit(message.visit_id)
            name = customer_title(entry.arrival.customer, self.texts)[0] if entry else message.customer_id
            holder = state.holder
            text = self.texts("claim.free") if holder is None else self.texts("claim.other", rm=holder)
            self._print(f"{time.strftime('%H:%M:%S')}  = {name}: {text}")
        elif isinstance(message, Retraction):
            for arrival in self.feed.retract(message):
                self.claims.forget(arrival.visit_id)
                self._print(f"{time.strftime('%H:%M:%S')}  - {arrival.customer.customer_id}")

    def expire(self) -> None:
        for arrival in self.feed.expire(utc_now()):
            self.claims.forget(arrival.visit_id)
            self._print(f"{time.strftime('%H:%M:%S')}  - {customer_title(arrival.customer, self.texts)[0]}")

    def connection(self, online: bool) -> None:
        state = self.texts("conn.online" if online else "conn.offline")
        self._print(f"{time.strftime('%H:%M:%S')}  * {state}")

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def run_console(config: PadConfig, texts: Texts, out: TextIO, exit_after: int | None = None,
                seconds: float | None = None) -> int:
    """Print arrivals until Ctrl-C, ``exit_after`` arrivals, or ``seconds``; exit code 0."""
    link = PadLink(config)
    view = ConsoleFeed(link.config, texts, out)  # rm_id from the roster
    link.start()
    view._print(texts("conn.starting"))
    online = False
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            if link.connected != online:
                online = link.connected
                view.connection(online)
            try:
                message = link.receiver.queue.get(timeout=0.2).message
                view.handle(message, replayed=message.id in link.replayed)
            except queue.Empty:
                view.expire()
            if exit_after is not None and view.shown >= exit_after:
                break
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()
    return 0

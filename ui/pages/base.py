"""The plug-in page interface: how a role's screen joins the app without forking it.

A page is a module listed in :data:`PAGES_BY_ROLE` with one function::

    def create_page(context: PageContext) -> QWidget: ...

The window calls it once at start-up and shows the widget under the header
(title, connection state, badge).  What a page gets in ``context``:

- ``bridge``: :class:`ui.bridge.PadBridge`; connect to ``message_received``
  (every checked, de-duplicated message this device's role may read; filter by
  type) or the typed signals.  Slots run on the GUI thread.
- ``publish(message)``: durable, non-blocking send (outbox, then broker).
- ``config`` (:class:`ui.state.config.PadConfig`: branch, device and RM ids, role),
  ``texts`` (:class:`ui.state.i18n.Texts`; add words with ``ui.state.i18n.register_texts``),
  ``metrics`` (touch-target and font sizes in pixels), ``clock``.

Optional: a page with a ``badge_changed = pyqtSignal(int)`` gets its count
shown in the header; one with a ``retranslate(texts)`` method follows the
language button.  A role whose module is missing gets a placeholder page.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from PyQt6.QtWidgets import QVBoxLayout, QWidget

from mqtt.messages import Message, utc_now
from ui.bridge import PadBridge
from ui.state.config import PadConfig
from ui.state.i18n import Texts
from ui.widgets.common import label
from ui.widgets.screen import Metrics

logger = logging.getLogger(__name__)

PAGES_BY_ROLE: dict[str, str] = {
    "rm": "ui.pages.rm",
    "teller": "ui.pages.teller",
    "supervisor": "ui.pages.supervisor",
}


@dataclass(frozen=True)
class PageContext:
    config: PadConfig
    bridge: PadBridge
    publish: Callable[[Message], object]
    texts: Texts
    metrics: Metrics
    clock: Callable[[], datetime] = field(default=utc_now)


class PageFactory(Protocol):
    def __call__(self, context: PageContext) -> QWidget: ...


class MissingPage(QWidget):
    """Shown when the role's page module is not installed."""

    def __init__(self, context: PageContext) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.addWidget(label(context.texts("page.missing"), "title"))
        layout.addStretch(1)


def page_factory(role: str) -> PageFactory:
    module_name = PAGES_BY_ROLE.get(role)
    if module_name is None:
        raise ValueError(f"no page registered for role {role!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        logger.warning("page module %s is not installed", module_name)
        return MissingPage
    factory: PageFactory = module.create_page
    return factory


def create_page(context: PageContext) -> QWidget:
    return page_factory(context.config.role)(context)

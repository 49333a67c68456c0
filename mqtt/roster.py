"""Who is behind each device of a branch, and the checks that follow from it.

The broker authenticates a *device* (client id = username = certificate CN)
and its ACL lets a device publish claims, outcomes, authorization requests
and decisions only on topics that carry its own id (:data:`mqtt.topics.AUTHORED_LEAVES`).
A message also names people: the RM of a claim or outcome, the teller of an
authorization request, the supervisor of a decision.  Those names are checked
here against the *roster*, never trusted:

- the roster (``roster.json``, written by ``branch-edge provision`` from
  ``devices.toml``) gives each device its role and the staff member who uses
  it (``staff_id``, default: the device id);
- :func:`check_author` accepts a message only when its author device is on the
  roster with the role that may send it, and the person the message names is
  the one bound to that device.  It returns the verified actor (the staff id),
  which receivers use for audit entries and credit instead of a payload field.

Without a roster (the loopback demo with its unauthenticated embedded broker)
only the device is known: the actor is the author device's id and the names in
the payload cannot be verified.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqtt.files import read_bounded
from mqtt.messages import AuthDecision, AuthRequest, Claim, DeviceStatus, Message, Outcome

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ROLES = ("edge", "rm", "teller", "supervisor")
MAX_ROSTER_BYTES = 4 * 1024 * 1024

# message type -> (role that may send it, payload field naming the person behind the device)
AUTHOR_RULES: dict[type[Message], tuple[str | None, str | None]] = {
    Claim: ("rm", "rm_id"),
    Outcome: ("rm", "rm_id"),
    AuthRequest: ("teller", "teller_id"),
    AuthDecision: ("supervisor", "supervisor_id"),
    DeviceStatus: (None, None),  # any role; the status's own ``role`` must be the device's
}


class RosterError(ValueError):
    """An unreadable or malformed roster file."""


class Rejected(Exception):  # noqa: N818 - a verdict, not a failure of the program
    """A well-formed message that is not acceptable (wrong author, not the visit's customer...).

    ``reason`` is a short category (it becomes the ``rejected.<reason>`` count);
    the detail never echoes personal data.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Member:
    device_id: str
    role: str
    staff_id: str


@dataclass(frozen=True)
class Roster:
    branch_id: str
    members: dict[str, Member]

    def get(self, device_id: str) -> Member | None:
        return self.members.get(device_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "branch_id": self.branch_id,
            "devices": [{"id": m.device_id, "role": m.role, "staff_id": m.staff_id}
                        for m in self.members.values()],
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "roster") -> Roster:
        if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
            raise RosterError(f"{source}: expected an object with a 'devices' list")
        branch = data.get("branch_id")
        if not isinstance(branch, str) or not _ID.fullmatch(branch):
            raise RosterError(f"{source}: missing or malformed branch_id")
        members: dict[str, Member] = {}
        for i, entry in enumerate(data["devices"]):
            values = [entry.get(k) if isinstance(entry, dict) else None for k in ("id", "role", "staff_id")]
            texts = [v for v in values if isinstance(v, str) and _ID.fullmatch(v)]
            if len(texts) != len(values) or texts[1] not in ROLES:
                raise RosterError(f"{source}: devices[{i}] needs id, role ({', '.join(ROLES)}) and staff_id")
            device_id, role, staff_id = texts
            if device_id in members:
                raise RosterError(f"{source}: device {device_id!r} listed twice")
            members[device_id] = Member(device_id, role, staff_id)
        return cls(branch, members)

    @classmethod
    def load(cls, path: Path) -> Roster:
        try:
            raw = read_bounded(path, MAX_ROSTER_BYTES, "roster file")
            data = json.loads(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise RosterError(f"cannot read roster file {path}: {err}") from err
        return cls.from_json(data, str(path))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


def check_author(message: Message, author: str, roster: Roster | None) -> str:
    """The verified actor behind ``message`` sent by device ``author``; raises :class:`Rejected`.

    ``author`` comes from the topic (the broker's ACL makes it the connected
    device).  Checks, for the message types in :data:`AUTHOR_RULES`: the
    author is on the roster, has the role that sends this type, and is the
    device of the RM / teller / supervisor the payload names.
    """
    rule = AUTHOR_RULES.get(type(message))
    if rule is None:
        return author
    role, field = rule
    if roster is None:
        return author
    member = roster.get(author)
    if member is None:
        raise Rejected("unknown_device", f"{author} is not on the branch roster")
    if role is not None and member.role != role:
        raise Rejected("wrong_role", f"{author} is a {member.role} device, not {role}")
    if isinstance(message, DeviceStatus) and message.role != member.role:
        raise Rejected("wrong_role", f"{author} reports role {message.role}, roster says {member.role}")
    if field is not None and getattr(message, field) != member.staff_id:
        raise Rejected("wrong_staff", f"{field} is not the staff member bound to {author}")
    return member.staff_id

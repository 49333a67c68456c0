"""The topic scheme: the one place that knows how topics are spelled.

Every topic lives under ``bank/v1/branch/{branch_id}/``.  Which message
schema travels on which leaf is fixed here too, so a receiver can reject a
message that arrives on the wrong topic (a claim posted to ``arrivals``).

A leaf ending in ``/+`` names a device in its last level.  On the leaves in
:data:`AUTHORED_LEAVES` that device is the message's author: the broker's ACL
lets a device publish there only under its own id (its certificate's name), so
a receiver knows who sent a claim, an outcome, an authorization request or a
supervisor's decision from the topic alone, whatever the payload says.  On
``auth/responses/+`` the device is the recipient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "bank/v1/branch"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# leaf (with ``+`` where a device id goes) -> schema name carried there
LEAF_SCHEMAS: dict[str, str] = {
    "arrivals": "arrival",
    "retractions": "retraction",
    "claims/+": "claim",
    "outcomes/+": "outcome",
    "auth/requests/+": "auth_request",
    "auth/responses/+": "auth_response",
    "auth/escalations": "auth_escalation",
    "auth/decisions/+": "auth_decision",
    "auth/scenarios": "auth_scenarios",
    "status/+": "device_status",
    "notices": "notice",
    "audit/heads": "audit_head",
    # head office <-> branch (bridged): erasures and gallery packages in, their acknowledgements,
    # the branch's fleet state and its counts and purchase links out
    "fleet/erasures": "erasure",
    "fleet/erasure_acks": "erasure_ack",
    "fleet/gallery": "gallery_chunk",
    "fleet/gallery_acks": "gallery_ack",
    "fleet/state": "fleet_state",
    "fleet/counts": "arrival_counts",
    "fleet/purchases": "purchase_link",
}
# Leaves whose device level is the author (the only device the ACL lets publish there).
AUTHORED_LEAVES = frozenset({"claims/+", "outcomes/+", "auth/requests/+", "auth/decisions/+", "status/+"})


class TopicError(ValueError):
    """A branch or device id that cannot be part of a topic, or an unknown topic."""


def check_id(value: str, what: str = "id") -> str:
    """Ids become topic levels and ACL entries: keep them to ``[A-Za-z0-9_-]{1,64}``."""
    if not _ID_PATTERN.fullmatch(value):
        raise TopicError(f"{what} {value!r} must match [A-Za-z0-9_-]{{1,64}}")
    return value


@dataclass(frozen=True)
class BranchTopics:
    """Topic names of one branch."""

    branch_id: str

    def __post_init__(self) -> None:
        check_id(self.branch_id, "branch id")

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.branch_id}/"

    def leaf(self, name: str) -> str:
        return self.prefix + name

    @property
    def arrivals(self) -> str:
        return self.leaf("arrivals")

    @property
    def retractions(self) -> str:
        return self.leaf("retractions")

    @property
    def audit_heads(self) -> str:
        return self.leaf("audit/heads")

    def _of(self, leaf: str, device_id: str) -> str:
        return self.leaf(f"{leaf}/{check_id(device_id, 'device id')}")

    @property
    def claims(self) -> str:
        """Every device's claims (a subscription filter); publish on :meth:`claims_of`."""
        return self.leaf("claims/+")

    def claims_of(self, device_id: str) -> str:
        return self._of("claims", device_id)

    @property
    def outcomes(self) -> str:
        """Every device's outcomes (a subscription filter); publish on :meth:`outcomes_of`."""
        return self.leaf("outcomes/+")

    def outcomes_of(self, device_id: str) -> str:
        return self._of("outcomes", device_id)

    @property
    def auth_requests(self) -> str:
        """Every teller terminal's requests (a subscription filter)."""
        return self.leaf("auth/requests/+")

    def auth_requests_of(self, device_id: str) -> str:
        return self._of("auth/requests", device_id)

    def auth_response(self, device_id: str) -> str:
        return self.leaf(f"auth/responses/{check_id(device_id, 'device id')}")

    @property
    def auth_escalations(self) -> str:
        return self.leaf("auth/escalations")

    @property
    def auth_decisions(self) -> str:
        """Every supervisor's decisions (a subscription filter)."""
        return self.leaf("auth/decisions/+")

    def auth_decisions_of(self, device_id: str) -> str:
        return self._of("auth/decisions", device_id)

    @property
    def auth_scenarios(self) -> str:
        """Retained: the counter scenarios the edge enforces."""
        return self.leaf("auth/scenarios")

    def status(self, device_id: str) -> str:
        return self.leaf(f"status/{check_id(device_id, 'device id')}")

    @property
    def notices(self) -> str:
        return self.leaf("notices")

    def fleet(self, name: str) -> str:
        """A head-office leaf: ``erasures``, ``erasure_acks``, ``gallery``, ``gallery_acks``,
        ``state``, ``counts``, ``purchases``."""
        leaf = f"fleet/{name}"
        if leaf not in LEAF_SCHEMAS:
            raise TopicError(f"no fleet leaf {name!r}")
        return self.leaf(leaf)

    @property
    def everything(self) -> str:
        return self.leaf("#")


def every_branch(leaf: str) -> str:
    """A subscription filter for ``leaf`` of every branch (head office, on the central broker)."""
    if leaf not in LEAF_SCHEMAS:
        raise TopicError(f"unknown leaf {leaf!r}")
    return f"{ROOT}/+/{leaf}"


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """``bank/v1/branch/B/claims/pad-1`` -> ``("B", "claims/+", "pad-1")``: branch, leaf and
    the device named in the topic (``None`` on a leaf without one).

    Raises:
        TopicError: the topic is not one of ours.
    """
    branch, leaf = split_topic(topic)
    return branch, leaf, topic.rsplit("/", 1)[1] if leaf.endswith("/+") else None


def author_of(topic: str) -> str | None:
    """The authoring device of a message on ``topic`` (see :data:`AUTHORED_LEAVES`), or None.

    Raises:
        TopicError: the topic is not one of ours.
    """
    _, leaf, device = parse_topic(topic)
    return device if leaf in AUTHORED_LEAVES else None


def split_topic(topic: str) -> tuple[str, str]:
    """``bank/v1/branch/B/auth/responses/pad-1`` -> ``("B", "auth/responses/+")``.

    Raises:
        TopicError: the topic is not one of ours.
    """
    if not topic.startswith(ROOT + "/"):
        raise TopicError(f"topic outside {ROOT}/: {topic!r}")
    parts = topic[len(ROOT) + 1 :].split("/")
    branch, leaf = parts[0], parts[1:]
    if not _ID_PATTERN.fullmatch(branch) or not leaf:
        raise TopicError(f"malformed topic {topic!r}")
    name = "/".join(leaf)
    if name in LEAF_SCHEMAS:
        return branch, name
    wildcard = "/".join([*leaf[:-1], "+"])
    if wildcard in LEAF_SCHEMAS and _ID_PATTERN.fullmatch(leaf[-1]):
        return branch, wildcard
    raise TopicError(f"unknown topic {topic!r}")


def schema_for_topic(topic: str) -> tuple[str, str]:
    """Return ``(branch_id, schema name)`` expected on ``topic``."""
    branch, leaf = split_topic(topic)
    return branch, LEAF_SCHEMAS[leaf]


def topic_for(schema: str, branch_id: str, device_id: str | None = None) -> str:
    """The topic a message of ``schema`` is published on.

    ``device_id`` is the device named in the topic: the author of a claim, an
    outcome, an authorization request or decision and a ``device_status``, the
    recipient of an ``auth_response``.
    """
    for leaf, name in LEAF_SCHEMAS.items():
        if name != schema:
            continue
        if leaf.endswith("/+"):
            if device_id is None:
                raise TopicError(f"{schema} needs a device id for its topic")
            return BranchTopics(branch_id).leaf(leaf[:-1] + check_id(device_id, "device id"))
        return BranchTopics(branch_id).leaf(leaf)
    raise TopicError(f"no topic for schema {schema!r}")

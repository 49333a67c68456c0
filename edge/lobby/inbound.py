"""What the edge daemon receives over MQTT, and where each message goes.

RM outcomes are stored in the CRM tables (for outcome linking); authorization
requests and supervisors' decisions go to the authorization service's inbox; head
office's erasures and gallery chunks (``[fleet] enabled``) to the fleet agent's.
One Receiver (so one de-duplication store, one set of per-device rate limits and
one roster) serves both; see :mod:`mqtt.receiver` for what it refuses before a
message gets here, and :class:`edge.crm.outcomes.OutcomeSink` for the visit check.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass, field

from edge.config import EdgeConfig
from edge.counter.service import auth_subscriptions
from edge.crm.outcomes import OutcomeSink
from edge.crm.records import CrmStore
from mqtt.messages import Erasure, GalleryChunk, Outcome
from mqtt.receiver import Delivery, Receiver, make_receiver
from mqtt.topics import BranchTopics

log = logging.getLogger(__name__)


@dataclass
class EdgeInbound:
    receiver: Receiver
    subscriptions: tuple[str, ...]
    auth_inbox: queue.Queue[Delivery]
    # head office's erasures and gallery chunks, for the fleet agent (edge.fleet.agent)
    fleet_inbox: queue.Queue[Delivery] = field(default_factory=queue.Queue)


def edge_inbound(cfg: EdgeConfig, crm: CrmStore) -> EdgeInbound:
    sink = OutcomeSink(crm)
    auth_inbox: queue.Queue[Delivery] = queue.Queue()
    fleet_inbox: queue.Queue[Delivery] = queue.Queue()

    def route(delivery: Delivery) -> None:
        if isinstance(delivery.message, Outcome):
            sink(delivery)
        elif isinstance(delivery.message, Erasure | GalleryChunk):
            fleet_inbox.put(delivery)
        else:
            auth_inbox.put(delivery)

    receiver = make_receiver(cfg.mqtt, handler=route)
    if receiver.roster is None and cfg.mqtt.tls:
        log.warning("no [mqtt] roster_file: the RMs, tellers and supervisors named in messages cannot "
                    "be checked against the devices that send them (branch-edge provision writes one)")
    topics: tuple[str, ...] = (BranchTopics(cfg.branch_id).outcomes,)
    if cfg.auth.enabled:
        topics += auth_subscriptions(cfg.branch_id)
    if cfg.fleet.enabled:
        fleet = BranchTopics(cfg.branch_id)
        topics += (fleet.fleet("erasures"), fleet.fleet("gallery"))
    return EdgeInbound(receiver, topics, auth_inbox, fleet_inbox)

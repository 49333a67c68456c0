"""What the edge daemon receives over MQTT, and where each message goes.

RM outcomes are stored in the CRM tables (for outcome linking); authorization
requests and supervisors' decisions go to the authorization service's inbox; head
office's erasures and gallery chunks (``[fleet] enabled``) to the fleet agent's.
One Receiver (so one de-duplication store) serves both.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field

from edge.config import EdgeConfig
from edge.counter.service import auth_subscriptions
from edge.crm.outcomes import OutcomeSink
from edge.crm.records import CrmStore
from mqtt.dedup import SeenIds
from mqtt.messages import Erasure, GalleryChunk, Outcome
from mqtt.receiver import Delivery, Receiver
from mqtt.topics import BranchTopics


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

    mqtt = cfg.mqtt
    receiver = Receiver(SeenIds(mqtt.seen_ids_path, mqtt.seen_ids_ttl_s, mqtt.seen_ids_max),
                        handler=route, max_payload_bytes=mqtt.max_payload_bytes)
    topics: tuple[str, ...] = (BranchTopics(cfg.branch_id).outcomes,)
    if cfg.auth.enabled:
        topics += auth_subscriptions(cfg.branch_id)
    if cfg.fleet.enabled:
        fleet = BranchTopics(cfg.branch_id)
        topics += (fleet.fleet("erasures"), fleet.fleet("gallery"))
    return EdgeInbound(receiver, topics, auth_inbox, fleet_inbox)

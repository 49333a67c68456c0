"""The one module that imports paho-mqtt.

``BranchClient`` connects one device (edge daemon or PAD) to the branch
broker: TLS with a client certificate plus username/password, a fixed client
id with a persistent session, a retained ``status`` with a Last Will of
``offline``, capped exponential reconnect back-off, QoS 1.  Publishing goes
through the SQLite :class:`~mqtt.outbox.Outbox`; a sender thread hands stored
messages to paho while connected and deletes each one when its PUBACK comes
back.  Incoming messages go to a :class:`~mqtt.receiver.Receiver`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt.codec import EncodeError, encode
from mqtt.config import MqttConfig
from mqtt.files import check_secret_mode
from mqtt.messages import DeviceStatus, Expiring, Message, new_id, utc_now
from mqtt.outbox import Outbox
from mqtt.receiver import Receiver
from mqtt.topics import AUTHORED_LEAVES, BranchTopics, TopicError, split_topic, topic_for

logger = logging.getLogger(__name__)

Role = Literal["edge", "rm", "teller", "supervisor", "central"]
SESSION_EXPIRY_S = 7 * 86400  # MQTT 5: keep the session (queued QoS 1) for a week
MAX_EXPIRY_INTERVAL_S = 2**32 - 1  # MQTT 5 Message Expiry Interval is a four-byte integer
SUBSCRIBED_LINE = "subscribed to"  # logged with the count once the broker has acknowledged them


class MqttError(Exception):
    """The client cannot be set up or used (bad TLS files, unreadable password)."""


@dataclass(frozen=True)
class Identity:
    branch_id: str
    device_id: str
    role: Role
    version: str = ""


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    """TLS 1.2+ context that checks the broker against our CA and presents our certificate."""
    try:
        ctx = ssl.create_default_context(cafile=str(config.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if config.cert_file is not None and config.key_file is not None:
            check_secret_mode(config.key_file, "MQTT private key")
            ctx.load_cert_chain(str(config.cert_file), str(config.key_file))
    except (OSError, ssl.SSLError) as err:
        raise MqttError(f"cannot load TLS files: {err}") from err
    return ctx


def _no_delay(client: Any, userdata: Any, sock: Any) -> None:
    """Disable Nagle: an arrival would otherwise wait ~40 ms for a delayed ACK."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def topic_of(message: Message) -> str:
    return topic_for(message.SCHEMA, message.branch_id, getattr(message, "device_id", None))


class BranchClient:
    def __init__(
        self,
        config: MqttConfig,
        identity: Identity,
        *,
        outbox: Outbox | None = None,
        receiver: Receiver | None = None,
        subscriptions: Iterable[str] = (),
    ) -> None:
        self.config = config
        self.identity = identity
        self.topics = BranchTopics(identity.branch_id)
        self.outbox = outbox if outbox is not None else Outbox(config.outbox_path)
        self.receiver = receiver
        self._subscriptions = list(subscriptions)
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._inflight: dict[int, paho.MQTTMessageInfo] = {}
        self._counts = {"connects": 0, "disconnects": 0, "refused": 0, "connect_failed": 0, "acked": 0,
                        "publish_refused": 0}
        self.last_refusal: str | None = None
        self._details: DeviceStatus | None = None  # the owner's latest status (cameras, fps...)
        self._sender = threading.Thread(target=self._run_sender, name="mqtt-outbox", daemon=True)
        self._paho = self._make_paho()

    # --- set-up -------------------------------------------------------------

    def _make_paho(self) -> paho.Client:
        cfg = self.config
        v5 = cfg.protocol == "5"
        kwargs: dict[str, Any] = {"protocol": paho.MQTTv5 if v5 else paho.MQTTv311}
        if not v5:
            kwargs["clean_session"] = False
        client = paho.Client(CallbackAPIVersion.VERSION2, cfg.effective_client_id, **kwargs)
        client.enable_logger(logging.getLogger("mqtt.paho"))
        client.suppress_exceptions = True  # defence in depth: Receiver.accept already never raises
        # paho annotates whole seconds; it computes with the floats it is given
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)  # type: ignore[arg-type]
        client.max_inflight_messages_set(cfg.max_inflight)
        if cfg.tls:
            client.tls_set_context(tls_context(cfg))
        username = cfg.username or (self.identity.device_id if cfg.tls else None)
        if username is not None:
            client.username_pw_set(username, self._password())
        will = self._status("offline")
        client.will_set(self.topics.status(self.identity.device_id), encode(will), 1, True)
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _password(self) -> str | None:
        try:
            return self.config.read_password()
        except OSError as err:
            raise MqttError(f"cannot read password file: {err.strerror or err}") from err

    def _status(self, state: Literal["online", "offline", "stopped"]) -> DeviceStatus:
        ident = self.identity
        if self._details is not None and state != "offline":
            return dataclasses.replace(self._details, id=new_id(), sent_at=utc_now(), state=state)
        return DeviceStatus(
            branch_id=ident.branch_id,
            device_id=ident.device_id,
            role=ident.role,
            state=state,
            version=ident.version,
        )

    # --- life cycle ---------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; paho reconnects on its own from then on."""
        cfg = self.config
        host = cfg.host or "127.0.0.1"
        extra: dict[str, Any] = {}
        if cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            extra = {"clean_start": False, "properties": props}
        self._paho.connect_async(host, cfg.port, cfg.keepalive_s, **extra)
        self._paho.loop_start()
        self._sender.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, drain_s: float = 2.0) -> None:
        """Publish ``stopped``, wait up to ``drain_s`` for the outbox to empty, disconnect."""
        if self.connected:
            self._publish_status("stopped")
            self._drain(drain_s)
        self._stopping.set()
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join(5)
        self._paho.disconnect()
        self._paho.loop_stop()
        self._paho._reset_sockets()  # paho 2.1 leaves loop_start()'s socket pair open
        self.outbox.close()

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)

    # --- publishing ---------------------------------------------------------

    def publish(self, message: Message, topic: str | None = None) -> None:
        """Store ``message`` in the outbox (durably) and send it as soon as connected.

        Raises:
            EncodeError: the message breaks the contract, or names another device as its
                author (the broker would drop it; receivers would reject it); nothing is stored.
        """
        payload = encode(message)
        topic = topic or topic_of(message)
        self._check_author(topic)
        expires = message.expires_at.timestamp() if isinstance(message, Expiring) else None
        self.outbox.put(message.id, topic, payload, retain=message.RETAINED, expires_at=expires)
        self._wake.set()

    def _check_author(self, topic: str) -> None:
        try:
            _, leaf = split_topic(topic)
        except TopicError as err:
            raise EncodeError(str(err)) from err
        if leaf in AUTHORED_LEAVES and topic.rsplit("/", 1)[1] != self.identity.device_id:
            raise EncodeError(f"{topic}: a device publishes there only under its own id "
                              f"({self.identity.device_id})")

    def update_status(self, status: DeviceStatus) -> None:
        """Replace the retained device status (latest wins: it is state, not an event,
        so it bypasses the outbox); it is re-published on every reconnect."""
        self._details = status
        if self.connected:
            self._publish_status(status.state if status.state != "offline" else "online")

    def publish_raw(self, topic: str, payload: bytes, timeout: float = 5.0) -> bool:
        """QoS 1 publish of arbitrary bytes, bypassing the contract and the outbox.

        For diagnostics and tests (fuzzing receivers, forged messages); returns
        whether the broker acknowledged it within ``timeout``.
        """
        info = self._paho.publish(topic, payload, 1, False)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def _run_sender(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._sweep_acked()
                if self._connected.is_set():
                    self._send_pending()
            except Exception:  # the sender thread must survive anything
                logger.exception("outbox sender failed; retrying")
                time.sleep(0.5)

    def _sweep_acked(self) -> None:
        for seq, info in list(self._inflight.items()):
            if info.is_published():
                self.outbox.remove(seq)
                del self._inflight[seq]
                self._counts["acked"] += 1

    def _send_pending(self) -> None:
        room = 4 * self.config.max_inflight - len(self._inflight)
        for item in self.outbox.pending(exclude=self._inflight.keys(), limit=max(room, 0)):
            props = self._expiry_props(item.expires_at)
            info = self._paho.publish(item.topic, item.payload, item.qos, item.retain, props)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                logger.warning("publish not queued: %s", paho.error_string(info.rc))
                return
            self._inflight[item.seq] = info  # paho keeps it and resends after a reconnect

    def _expiry_props(self, expires_at: float | None) -> Properties | None:
        if self.config.protocol != "5" or expires_at is None:
            return None
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho: unannotated
        props.MessageExpiryInterval = min(MAX_EXPIRY_INTERVAL_S, max(1, int(expires_at - time.time())))
        return props

    def _publish_status(self, state: Literal["online", "offline", "stopped"]) -> None:
        topic = self.topics.status(self.identity.device_id)
        self._paho.publish(topic, encode(self._status(state)), 1, True)

    # --- paho callbacks (network thread) ------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._counts["refused"] += 1
            self.last_refusal = str(reason)
            logger.warning("broker refused the connection: %s", reason)
            return
        self._counts["connects"] += 1
        logger.info("connected to broker (session present: %s)", flags.session_present)
        if self._subscriptions:  # one SUBSCRIBE, so one SUBACK says when every topic is heard
            client.subscribe([(topic, 1) for topic in self._subscriptions])
        self._publish_status("online")
        self._connected.set()
        self._wake.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[Any], props: Any) -> None:
        # Messages published before this are not delivered on a first connection (a persistent
        # session keeps them only once it exists): the demo waits for this line before sending.
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            logger.warning("broker refused %d of %d subscriptions: %s", len(refused), len(reasons),
                           ", ".join(refused))
        logger.info("%s %d topics", SUBSCRIBED_LINE, len(reasons) - len(refused))

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        """TCP or TLS refused (a revoked or foreign certificate fails the handshake)."""
        self._counts["connect_failed"] += 1
        self.last_refusal = "connection or TLS handshake failed"

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            self._counts["disconnects"] += 1
            logger.warning("disconnected from broker: %s", reason)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if reason.is_failure:  # MQTT 5 only: e.g. "Not authorized"
            self._counts["publish_refused"] += 1
            logger.warning("broker refused publish %d: %s", mid, reason)
        self._wake.set()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        """Network thread: whatever happens, return normally so that paho acknowledges the
        message and keeps reading (a message that raised would come back after every reconnect)."""
        if self.receiver is None:
            return
        try:
            try:
                topic = msg.topic
            except UnicodeDecodeError:
                topic = "<undecodable topic>"
            self.receiver.accept(topic, bytes(msg.payload))
        except Exception:  # Receiver.accept never raises; this guards a replaced receiver
            logger.exception("receiver failed on a message; dropped")

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._counts)
        out.update(connected=self.connected, outbox=len(self.outbox), inflight=len(self._inflight))
        if self.receiver is not None:
            out["received"] = self.receiver.stats()
        return out

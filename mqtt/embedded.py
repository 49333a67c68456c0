"""A tiny MQTT 3.1.1 broker on loopback, so ``make demo`` needs nothing installed.

Scope (enough for the demo, nothing more): QoS 0 and 1 (QoS 2 is granted as
1), retained messages, Last Will, persistent sessions (``clean_session``
false keeps subscriptions and queues QoS 1 messages while the client is
away, in memory), ``+``/``#`` wildcards, keep-alive.  No TLS and no
authentication, hence loopback only: production and the tests use Mosquitto.

Why our own and not amqtt: amqtt 0.12 pulls in fifteen packages (typer, rich,
websockets, argon2, psutil, ...) for a demo convenience; this file is
stdlib-only and small enough to read in one sitting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import threading
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


def topic_matches(pattern: str, topic: str) -> bool:
    pat, parts = pattern.split("/"), topic.split("/")
    for i, level in enumerate(pat):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(pat) == len(parts)


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


@dataclass
class Session:
    client_id: str
    clean: bool
    subs: dict[str, int] = field(default_factory=dict)
    queue: list[Message] = field(default_factory=list)  # waiting while offline
    unacked: dict[int, Message] = field(default_factory=dict)
    next_id: int = 0
    writer: asyncio.StreamWriter | None = None

    def packet_id(self) -> int:
        self.next_id = self.next_id % 65535 + 1
        return self.next_id


def _utf8(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("!H", data, pos)
    return data[pos + 2 : pos + 2 + n].decode(), pos + 2 + n


def _blob(data: bytes, pos: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from("!H", data, pos)
    return data[pos + 2 : pos + 2 + n], pos + 2 + n


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    length, out = len(body), bytearray([(kind << 4) | flags])
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + body


def _publish_packet(msg: Message, packet_id: int | None, dup: bool = False) -> bytes:
    topic = msg.topic.encode()
    body = struct.pack("!H", len(topic)) + topic
    if packet_id is not None:
        body += struct.pack("!H", packet_id)
    flags = (0x08 if dup else 0) | (msg.qos << 1) | (1 if msg.retain else 0)
    return _packet(PUBLISH, flags, body + msg.payload)


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    head = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return head >> 4, head & 0x0F, await reader.readexactly(length)


class EmbeddedBroker:
    """``start()`` returns the port; runs its own event loop on a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the embedded broker has no authentication: loopback only")
        self.host, self.port = host, port
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, Message] = {}
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-mqtt", daemon=True)

    def start(self) -> int:
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError("embedded MQTT broker did not start")
        return self.port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, self.host, self.port)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        # Let cancelled connection handlers finish before the loop goes away.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def stop(self) -> None:
        if self._server is None or not self._thread.is_alive():
            return

        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for session in self.sessions.values():
                if session.writer is not None:
                    session.writer.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # --- one connection -------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session: Session | None = None
        will: Message | None = None
        try:
            kind, _, body = await asyncio.wait_for(_read_packet(reader), 10)
            if kind != CONNECT:
                return
            session, will, keepalive = self._connect(body, writer)
            while True:
                timeout = keepalive * 1.5 if keepalive else None
                kind, flags, body = await asyncio.wait_for(_read_packet(reader), timeout)
                if kind == DISCONNECT:
                    will = None
                    return
                self._handle(session, kind, flags, body)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, ValueError, struct.error):
            pass
        finally:
            self._disconnected(session, writer, will)

    def _connect(self, body: bytes, writer: asyncio.StreamWriter) -> tuple[Session, Message | None, int]:
        _, pos = _utf8(body, 0)
        level, flags = body[pos], body[pos + 1]
        (keepalive,) = struct.unpack_from("!H", body, pos + 2)
        if level != 4:
            writer.write(_packet(CONNACK, 0, b"\x00\x01"))  # unacceptable protocol version
            raise ConnectionError("not MQTT 3.1.1")
        client_id, pos = _utf8(body, pos + 4)
        will = None
        if flags & 0x04:
            will_topic, pos = _utf8(body, pos)
            will_payload, pos = _blob(body, pos)
            will = Message(will_topic, will_payload, min((flags >> 3) & 3, 1), bool(flags & 0x20))
        clean = bool(flags & 0x02)
        old = self.sessions.get(client_id)
        if old is not None and old.writer is not None:
            old.writer.close()  # a second connection with the same id takes over
        present = old is not None and not clean and not old.clean
        session = old if present and old is not None else Session(client_id, clean)
        session.clean, session.writer = clean, writer
        self.sessions[client_id] = session
        writer.write(_packet(CONNACK, 0, bytes([1 if present else 0, 0])))
        self._resume(session)
        return session, will, keepalive

    def _resume(self, session: Session) -> None:
        assert session.writer is not None
        for packet_id, msg in session.unacked.items():
            session.writer.write(_publish_packet(msg, packet_id, dup=True))
        queued, session.queue = session.queue, []
        for msg in queued:
            self._send(session, msg)

    def _handle(self, session: Session, kind: int, flags: int, body: bytes) -> None:
        assert session.writer is not None
        if kind == PUBLISH:
            self._on_publish(session, flags, body)
        elif kind == PUBACK:
            session.unacked.pop(struct.unpack("!H", body[:2])[0], None)
        elif kind == SUBSCRIBE:
            self._on_subscribe(session, body)
        elif kind == UNSUBSCRIBE:
            (packet_id,) = struct.unpack_from("!H", body, 0)
            pos = 2
            while pos < len(body):
                pattern, pos = _utf8(body, pos)
                session.subs.pop(pattern, None)
            session.writer.write(_packet(UNSUBACK, 0, struct.pack("!H", packet_id)))
        elif kind == PINGREQ:
            session.writer.write(_packet(PINGRESP, 0, b""))
        else:
            raise ValueError(f"unsupported packet type {kind}")

    def _on_publish(self, session: Session, flags: int, body: bytes) -> None:
        qos, retain = (flags >> 1) & 3, bool(flags & 1)
        topic, pos = _utf8(body, 0)
        if qos:
            (packet_id,) = struct.unpack_from("!H", body, pos)
            pos += 2
            assert session.writer is not None
            session.writer.write(_packet(PUBACK, 0, struct.pack("!H", packet_id)))
        self.route(Message(topic, body[pos:], min(qos, 1), retain))

    def _on_subscribe(self, session: Session, body: bytes) -> None:
        (packet_id,) = struct.unpack_from("!H", body, 0)
        pos, granted = 2, bytearray()
        new: list[str] = []
        while pos < len(body):
            pattern, pos = _utf8(body, pos)
            qos = min(body[pos], 1)
            pos += 1
            session.subs[pattern] = qos
            granted.append(qos)
            new.append(pattern)
        assert session.writer is not None
        session.writer.write(_packet(SUBACK, 0, struct.pack("!H", packet_id) + bytes(granted)))
        for msg in list(self.retained.values()):
            if any(topic_matches(p, msg.topic) for p in new):
                self._send(session, Message(msg.topic, msg.payload, msg.qos, True))

    def route(self, msg: Message) -> None:
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg
            else:
                self.retained.pop(msg.topic, None)
        for session in list(self.sessions.values()):
            qos = max((q for p, q in session.subs.items() if topic_matches(p, msg.topic)), default=-1)
            if qos >= 0:
                self._send(session, Message(msg.topic, msg.payload, min(qos, msg.qos)))

    def _send(self, session: Session, msg: Message) -> None:
        if session.writer is None:
            if msg.qos:
                session.queue.append(msg)
            return
        packet_id = session.packet_id() if msg.qos else None
        if packet_id is not None:
            session.unacked[packet_id] = msg
        session.writer.write(_publish_packet(msg, packet_id))

    def _disconnected(
        self, session: Session | None, writer: asyncio.StreamWriter, will: Message | None
    ) -> None:
        with contextlib.suppress(Exception):
            writer.close()
        if session is None or session.writer is not writer:
            return
        session.writer = None
        if session.clean:
            self.sessions.pop(session.client_id, None)
        if will is not None:
            self.route(will)

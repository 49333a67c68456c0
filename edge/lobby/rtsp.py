"""RTSP cameras: their credentials, their URLs as they may be shown, and a probe.

Credentials are secrets.  A camera's password reaches the URL that FFmpeg opens
(:func:`stream_url`, from the URL itself, ``password_file`` or ``password_env``) and
nothing else: what is logged, published in the device status, printed by ``doctor``
or exported as a metric uses :func:`mask_url` (``rtsp://admin:***@10.0.0.5/...``) and
:func:`redact` (any text that might quote the password).

:func:`probe` asks a camera for a stream's description (one RTSP ``DESCRIBE``, with
basic or digest authentication, as cameras ask) and says what is wrong in words an
installer can act on: unreachable, authentication failed, no such stream; and, when
it answers, the stream's codec.  OpenCV only says that a stream did not open.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from edge.config import CameraConfig
from edge.core.files import UnsafeFileError, read_regular_file
from mqtt.files import SecretFileError, check_secret_mode

MASK = "***"
MAX_PASSWORD_BYTES = 1024
MAX_REPLY_BYTES = 64 * 1024
# Query parameters some cameras take credentials in (Dahua, Foscam, ...).
SECRET_PARAMS = re.compile(r"(?i)([?&](?:password|passwd|pwd|pass|user|usr|username|auth|token)=)[^&#]*")
USER_AGENT = "branch-edge"

ProbeState = Literal["ok", "unauthorized", "not_found", "unreachable", "refused", "error"]


class CredentialError(ValueError):
    """The camera's password cannot be read (file missing or readable by others, variable unset)."""


def is_rtsp(source: str) -> bool:
    return source.lower().startswith(("rtsp://", "rtsps://"))


def mask_url(url: str) -> str:
    """The URL as it may be shown: the password (and credentials in the query) replaced by ***."""
    if not is_rtsp(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{host}" if user else f"{MASK}@{host}"
    query = SECRET_PARAMS.sub(lambda m: m.group(1) + MASK, "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def read_password(cam: CameraConfig) -> str | None:
    """The password from ``password_file`` (mode 0600) or ``password_env``; None when neither is set."""
    if cam.password_file is not None:
        try:
            check_secret_mode(cam.password_file, f"camera {cam.name} password file")
            raw = read_regular_file(cam.password_file, MAX_PASSWORD_BYTES, f"camera {cam.name} password file")
        except (SecretFileError, UnsafeFileError) as err:
            raise CredentialError(str(err)) from err
        try:
            text = raw.decode("utf-8").strip("\r\n")
        except UnicodeDecodeError as err:
            raise CredentialError(f"camera {cam.name} password file {cam.password_file}: not UTF-8") from err
        if not text:
            raise CredentialError(f"camera {cam.name} password file {cam.password_file} is empty")
        return text
    if cam.password_env is not None:
        value = os.environ.get(cam.password_env)
        if not value:
            raise CredentialError(f"camera {cam.name}: environment variable {cam.password_env} is not set")
        return value
    return None


def stream_url(cam: CameraConfig, url: str) -> str:
    """``url`` with the camera's user name and password in it, as FFmpeg takes them."""
    password = read_password(cam)
    if not is_rtsp(url) or (password is None and cam.username is None):
        return url
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = cam.username or unquote(userinfo.partition(":")[0])
    if password is None:  # a user name from the config; the URL's password, if any, stays
        keep = userinfo.partition(":")[2]
        credentials = quote(user, safe="") + (f":{keep}" if keep else "")
    else:
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path, parts.query, parts.fragment))


def secrets_of(cam: CameraConfig) -> list[str]:
    """Every form in which the camera's password could appear in a text."""
    found: list[str] = []
    for url in (cam.source, cam.substream):
        if url and is_rtsp(url):
            userinfo = urlsplit(url).netloc.rpartition("@")[0]
            if ":" in userinfo:
                found.append(userinfo.partition(":")[2])
            found += [m.group(0).partition("=")[2] for m in SECRET_PARAMS.finditer(url)
                      if "user" not in m.group(1).lower() and "usr" not in m.group(1).lower()]
    try:
        password = read_password(cam)
    except CredentialError:
        password = None
    if password:
        found.append(password)
    forms = {f for s in found if s for f in (s, unquote(s), quote(s, safe=""))}
    return sorted((f for f in forms if len(f) >= 3), key=len, reverse=True)


def redact(text: str, cam: CameraConfig) -> str:
    """``text`` with any URL of the camera masked and its password replaced by ***."""
    for url in (cam.source, cam.substream):
        if url and is_rtsp(url):
            text = text.replace(url, mask_url(url))
    for secret in secrets_of(cam):
        text = text.replace(secret, MASK)
    return text


# --- the probe ----------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    state: ProbeState
    detail: str
    codecs: tuple[str, ...] = field(default=())  # video encodings in the SDP: H264, H265, ...

    @property
    def problem(self) -> str:
        """One line for the camera's status ("" when the camera answered)."""
        return "" if self.state == "ok" else self.detail


def probe(url: str, timeout: float = 5.0) -> Probe:
    """DESCRIBE ``url`` (credentials from the URL); never raises, never quotes the password."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (322 if parts.scheme.lower() == "rtsps" else 554)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    clean = urlunsplit((parts.scheme, host if parts.port is None else f"{host}:{port}",
                        parts.path or "/", parts.query, ""))
    where = f"{host}:{port}"
    try:
        with _connect(host, port, parts.scheme.lower() == "rtsps", timeout) as sock:
            status, headers, body = _describe(sock, clean, 1, None)
            if status == 401 and user:
                authorization = _authorization(headers, user, password, clean)
                if authorization is not None:
                    status, headers, body = _describe(sock, clean, 2, authorization)
    except TimeoutError:
        return Probe("unreachable", f"camera unreachable: no answer from {where} within {timeout:g} s")
    except ConnectionRefusedError:
        return Probe("refused", f"camera unreachable: {where} refused the connection (wrong port, "
                                "RTSP disabled, or the camera is rebooting)")
    except ValueError as err:
        return Probe("error", f"{where} does not answer as an RTSP camera ({err})")
    except OSError as err:
        return Probe("unreachable", f"camera unreachable: {where}: {err.strerror or type(err).__name__}")
    return _answer(status, body, bool(user), parts.path or "/")


def _answer(status: int, body: str, with_user: bool, path: str) -> Probe:
    """What the camera's answer to DESCRIBE means."""
    if status == 401:
        who = "user or password rejected" if with_user else "no user name given"
        return Probe("unauthorized", f"authentication failed: the camera answered 401 ({who})")
    if status in (403,):
        return Probe("unauthorized", "authentication failed: the camera answered 403 (this user may "
                                     "not view the stream)")
    if status == 404:
        return Probe("not_found", f"no such stream on the camera (404): check the URL's path {path}")
    if status != 200:
        return Probe("error", f"the camera answered DESCRIBE with RTSP status {status}")
    codecs = tuple(re.findall(r"(?im)^a=rtpmap:\d+\s+([A-Za-z0-9.-]+)/", body))
    video = [c.upper() for c in codecs if c.upper() not in {"PCMU", "PCMA", "MPEG4-GENERIC", "OPUS", "L16",
                                                             "G726-32", "AAC"}]
    return Probe("ok", "camera answered" + (f" ({', '.join(video)})" if video else ""), tuple(video))


def _connect(host: str, port: int, tls: bool, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    if not tls:
        return sock
    context = ssl.create_default_context()
    context.check_hostname = False  # cameras serve self-signed certificates
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=host)


def _describe(sock: socket.socket, url: str, cseq: int,
              authorization: str | None) -> tuple[int, dict[str, list[str]], str]:
    lines = [f"DESCRIBE {url} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}",
             "Accept: application/sdp"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return _reply(sock)


def _reply(sock: socket.socket) -> tuple[int, dict[str, list[str]], str]:
    """One RTSP reply, bounded: its status, headers (lower-case names) and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
        if len(data) > MAX_REPLY_BYTES:
            raise ValueError("reply too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"RTSP/\d\.\d\s+(\d{3})", status_line)
    if match is None:
        raise ValueError("not an RTSP reply")
    headers: dict[str, list[str]] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    length = int((headers.get("content-length") or ["0"])[0] or 0)
    if not 0 <= length <= MAX_REPLY_BYTES:
        raise ValueError("bad Content-Length")
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return int(match.group(1)), headers, rest[:length].decode("utf-8", "replace")


def _authorization(headers: dict[str, list[str]], user: str, password: str, url: str) -> str | None:
    """The Authorization header answering the camera's challenge (digest preferred, else basic)."""
    challenges = headers.get("www-authenticate", [])
    digest = next((c for c in challenges if c.lower().startswith("digest")), None)
    if digest is not None:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', digest[len("digest"):]))
        realm, nonce = params.get("realm", ""), params.get("nonce", "")
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()
        ha2 = hashlib.md5(f"DESCRIBE:{url}".encode(), usedforsecurity=False).hexdigest()
        qop = "auth" if "auth" in params.get("qop", "").split(",") else ""
        extra = ""
        if qop:
            cnonce = os.urandom(8).hex()
            response = hashlib.md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode(),
                                   usedforsecurity=False).hexdigest()
            extra = f', qop=auth, nc=00000001, cnonce="{cnonce}"'
        else:
            response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode(), usedforsecurity=False).hexdigest()
        return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{url}", '
                f'response="{response}"{extra}')
    if any(c.lower().startswith("basic") for c in challenges):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return None

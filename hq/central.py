"""A central Mosquitto for head office, for tests, the fleet benchmark and small deployments:
one password-authenticated listener, the ACL of head office's application user
(:func:`mqtt.provision.acl.central_hq_acl`) and one entry per branch bridge user
(:func:`mqtt.provision.acl.central_acl_entry`: each branch writes only under its own prefix).

Production runs a clustered broker instead (``hq/deploy/emqx.conf``, docs/hq.md); the topic
tree, users and ACL are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mqtt.files import private_dir
from mqtt.provision import acl, passwd


@dataclass(frozen=True)
class CentralBroker:
    conf: Path
    port: int
    passwords: dict[str, str]  # user -> password (tests and the benchmark log in with them)


@dataclass(frozen=True)
class TlsListener:
    """Where branch bridges connect: TLS, a client certificate signed by ``ca_file`` required."""

    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


def write_central_broker(out: Path, *, port: int, branches: list[str], hq_user: str = "hq-app",
                         readers: tuple[str, ...] = ("hq-collector",),
                         bind: str = "127.0.0.1", broker_user: str | None = None,
                         iterations: int = passwd.ITERATIONS, persistence: bool = True,
                         tls: TlsListener | None = None,
                         bridge_passwd_lines: dict[str, str] | None = None) -> CentralBroker:
    """``out/central.conf`` with its password file, ACL and persistence folder.

    ``bridge_passwd_lines``: the hashed line ``branch-edge provision`` wrote for a branch's
    bridge user (``central/passwd-entry``), used as is; other users get a new password."""
    private_dir(out)
    given = bridge_passwd_lines or {}
    users = [hq_user, *readers] + [acl.bridge_user(b) for b in branches if b not in given]
    passwords = {u: passwd.new_password() for u in users}
    lines = [passwd.hash_line(u, p, iterations) + "\n" for u, p in passwords.items()]
    lines += [line.strip() + "\n" for line in given.values()]
    (out / "passwd").write_text("".join(lines), encoding="utf-8")
    (out / "passwd").chmod(0o600)
    every = dict.fromkeys([*branches, *given])
    entries = [acl.central_hq_acl(hq_user), *(acl.central_reader_acl(r) for r in readers)]
    entries += [acl.central_acl_entry(b) for b in every]
    header = "# head office's central broker: one block per user\n\n"
    (out / "acl").write_text(header + "\n".join(entries), encoding="utf-8")
    (out / "acl").chmod(0o600)
    data = out / "data"
    private_dir(data)
    settings = [
        *([f"user {broker_user}"] if broker_user else []),
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {out / 'passwd'}",
        f"acl_file {out / 'acl'}",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {data}/",
        "autosave_interval 30",
        "max_queued_messages 100000",
        "max_inflight_messages 200",
        "set_tcp_nodelay true",
        "message_size_limit 262144",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "connection_messages false",
        f"listener {port} {bind}",
    ]
    if tls is not None:
        settings += [f"listener {tls.port} {bind}", f"cafile {tls.ca_file}", f"certfile {tls.cert_file}",
                     f"keyfile {tls.key_file}", "require_certificate true", "tls_version tlsv1.2"]
    conf = out / "central.conf"
    conf.write_text("\n".join(settings) + "\n", encoding="utf-8")
    return CentralBroker(conf, port, passwords)

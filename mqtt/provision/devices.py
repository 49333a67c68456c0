"""``devices.toml``: the devices of one branch, their roles and who uses them.

    [[devices]]
    id = "edge-01"
    role = "edge"        # edge | rm | teller | supervisor

    [[devices]]
    id = "pad-rm-01"
    role = "rm"
    staff_id = "RM-01"   # the RM / teller / supervisor using this device; default: the device id

The device id is the certificate's name, the MQTT username and client id; the
staff id is what messages from the device must name as their RM, teller or
supervisor (``mqtt.roster``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from mqtt.topics import TopicError, check_id

ROLES = ("edge", "rm", "teller", "supervisor")


class ProvisionError(ValueError):
    """Bad devices file or output folder; the message says what to fix."""


@dataclass(frozen=True)
class Device:
    id: str
    role: str
    staff_id: str = ""  # empty: the device id

    @property
    def staff(self) -> str:
        return self.staff_id or self.id


def parse_devices(data: dict[str, object], source: str) -> list[Device]:
    entries = data.get("devices")
    if not isinstance(entries, list) or not entries:
        raise ProvisionError(f"{source}: needs at least one [[devices]] entry")
    devices = [_device(entry, f"{source}: devices[{i}]") for i, entry in enumerate(entries)]
    ids = [d.id for d in devices]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ProvisionError(f"{source}: duplicate device id {dupes[0]!r}")
    if not any(d.role == "edge" for d in devices):
        raise ProvisionError(f"{source}: no device with role 'edge'")
    return devices


def _device(entry: object, where: str) -> Device:
    if not isinstance(entry, dict) or not {"id", "role"} <= set(entry) <= {"id", "role", "staff_id"}:
        raise ProvisionError(f"{where}: needs the keys id and role (and optionally staff_id)")
    device_id, role, staff_id = entry["id"], entry["role"], entry.get("staff_id", "")
    if not all(isinstance(v, str) for v in (device_id, role, staff_id)):
        raise ProvisionError(f"{where}: id, role and staff_id must be strings")
    if role not in ROLES:
        raise ProvisionError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    try:
        check_id(device_id, "device id")
        if staff_id:
            check_id(staff_id, "staff id")
    except TopicError as err:
        raise ProvisionError(f"{where}: {err}") from err
    return Device(device_id, role, staff_id)


def load_devices(path: Path) -> list[Device]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ProvisionError(f"cannot read {path}: {err.strerror}") from err
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ProvisionError(f"{path}: not valid TOML: {err}") from err
    return parse_devices(data, str(path))

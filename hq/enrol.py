"""Central enrolment: templates computed by ``branch-edge fleet embed`` (run here as a
program, so head office's templates come from exactly the detector, alignment, quality gate
and recognizer a branch runs), recorded with the customer's consent.

The program's output (JSON, ``branch-edge-templates/1``) may also be given as a file: an
enrolment station elsewhere in head office computes it, and this side only records it.  Its
contract must be head office's; a customer without a recorded consent (channel and time) is
never enrolled.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hq.errors import HqError
from hq.registry import Registry
from mqtt.messages import CUSTOMER_ID_PATTERN
from mqtt.package import EmbeddingContract, PackageError

FORMAT = "branch-edge-templates/1"
MAX_OUTPUT_BYTES = 512 * 1024 * 1024


@dataclass
class EnrolReport:
    enrolled: list[str] = field(default_factory=list)
    templates_added: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # customer id -> reason
    photos_rejected: dict[str, int] = field(default_factory=dict)  # reason -> photos

    def to_dict(self) -> dict[str, Any]:
        return {"enrolled": self.enrolled, "templates_added": self.templates_added,
                "refused": self.refused, "photos_rejected": self.photos_rejected}


def embed_photos(photos: Path, *, customers_csv: Path | None = None, consent_channel: str | None = None,
                 models_dir: Path | None = None, program: str = "branch-edge",
                 edge_config: Path | None = None) -> dict[str, Any]:
    """Run ``branch-edge fleet embed`` and return its JSON (templates and rejections)."""
    command = [program, "fleet", "embed", "--photos", str(photos)]
    for flag, value in (("--customers", customers_csv), ("--consent-channel", consent_channel),
                        ("--models", models_dir), ("--config", edge_config)):
        if value is not None:
            command += [flag, str(value)]
    try:
        done = subprocess.run(command, capture_output=True, check=False, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HqError(f"cannot run {program} fleet embed: {err}") from err
    if done.returncode != 0:
        raise HqError(f"{program} fleet embed failed ({done.returncode}): "
                      f"{done.stderr.decode(errors='replace').strip()[-500:]}")
    if len(done.stdout) > MAX_OUTPUT_BYTES:
        raise HqError("fleet embed output over its limit")
    return parse_templates(done.stdout)


def parse_templates(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise HqError(f"templates: not JSON ({type(err).__name__})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(
            data.get("customers"), list):
        raise HqError(f"templates: not a {FORMAT} document")
    return data


def enrol_templates(registry: Registry, data: dict[str, Any], contract: EmbeddingContract) -> EnrolReport:
    """Record every customer of ``data`` that has a consent and at least one template."""
    try:
        theirs = EmbeddingContract.from_dict(data.get("contract"))
    except PackageError as err:
        raise HqError(f"templates: {err}") from err
    differences = theirs.differences(contract)
    if differences:
        raise HqError("templates were computed for another embedding contract: " + "; ".join(differences))
    report = EnrolReport()
    for entry in data["customers"]:
        cid, reason = _entry_check(entry, contract.dimension)
        for rejected in entry.get("rejected", []) if isinstance(entry, dict) else []:
            key = str(rejected.get("reason", "unknown"))[:40] if isinstance(rejected, dict) else "unknown"
            report.photos_rejected[key] = report.photos_rejected.get(key, 0) + 1
        if reason is not None:
            report.refused[cid] = reason
            continue
        vectors = [(t["source_sha256"], base64.b64decode(t["embedding"], validate=True))
                   for t in entry["templates"]]
        try:
            report.templates_added += registry.enrol(
                cid, display_name=entry["display_name"], tier=entry["tier"],
                assigned_rm=entry["assigned_rm"], consent_channel=entry["consent_channel"],
                consent_time=entry["consent_time"], model_pack=contract.model_pack,
                recognizer_sha256=contract.recognizer_sha256, templates=vectors)
        except HqError as err:
            report.refused[cid] = str(err)
            continue
        report.enrolled.append(cid)
    return report


def _entry_check(entry: Any, dimension: int) -> tuple[str, str | None]:
    """(customer id, why it cannot be enrolled or None)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("customer_id"), str):
        return "?", "malformed entry"
    cid = entry["customer_id"][:64]
    if not re.fullmatch(CUSTOMER_ID_PATTERN, entry["customer_id"]):
        return cid, "invalid customer id"
    for name, limit in (("display_name", 80), ("tier", 32), ("assigned_rm", 64)):
        if not isinstance(entry.get(name), str) or len(entry[name]) > limit:
            return cid, f"{name} missing or longer than {limit}"
    return cid, _consent_problem(entry) or _templates_problem(entry.get("templates"), dimension)


def _consent_problem(entry: dict[str, Any]) -> str | None:
    channel, when = entry.get("consent_channel"), entry.get("consent_time")
    if not isinstance(channel, str) or not channel.strip() or not isinstance(when, str):
        return "no_consent: a consent channel and time are required"
    try:
        zone = datetime.fromisoformat(when).tzinfo
    except ValueError:
        return "no_consent: the consent time is not ISO 8601"
    return "no_consent: the consent time has no time zone" if zone is None else None


def _templates_problem(templates: Any, dimension: int) -> str | None:
    if not isinstance(templates, list) or not templates:
        return "no usable photo"
    for t in templates:
        try:
            ok = (isinstance(t, dict) and isinstance(t.get("source_sha256"), str)
                  and len(t["source_sha256"]) == 64
                  and len(base64.b64decode(str(t.get("embedding")), validate=True)) == 4 * dimension)
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            return "malformed template"
    return None

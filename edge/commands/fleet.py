"""``branch-edge fleet``: this branch and head office (keys, gallery packages, templates).

- ``keygen``: the branch's X25519 key pair; head office registers the public key and
  encrypts this branch's gallery packages for it.
- ``import``: a gallery package file (air-gapped branches), checked and applied atomically.
- ``status``: the gallery version applied, the last head-office erasure, the contract.
- ``embed``: head office's enrolment station: photos in, templates out (JSON on stdout) with
  this build's detector, alignment, quality gate and recognizer, so head office's templates
  are computed exactly as a branch computes its own; ``branch-hq enrol`` runs it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("fleet", help="head office: branch keys, gallery packages, templates")
    inner = parser.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")

    keygen = inner.add_parser("keygen", help="create this branch's key pair for gallery packages")
    keygen.add_argument("--out", type=Path, required=True,
                        help="folder for branch.key (0600) and branch.pub.pem")
    keygen.set_defaults(func=run_keygen)

    imp = inner.add_parser("import", help="import a gallery package file from head office")
    imp.add_argument("package", type=Path, help="the package file")
    _common(imp)
    imp.set_defaults(func=run_import)

    status = inner.add_parser("status", help="gallery version and last head-office erasure applied here")
    _common(status)
    status.set_defaults(func=run_status)

    embed = inner.add_parser("embed", help="photos -> templates JSON on stdout (head office's enrolment)")
    embed.add_argument("--photos", type=Path, required=True, help="folder of photos (one folder per "
                       "customer, or as mapped by --customers)")
    embed.add_argument("--customers", type=Path, help="customers CSV (customer_id, photo, display_name, "
                       "tier, assigned_rm, consent_channel, consent_time)")
    embed.add_argument("--consent-channel", help="folders: the channel the consents were recorded on")
    embed.add_argument("--config", type=Path, help="edge TOML config (model pack, quality limits)")
    embed.add_argument("--models", type=Path, help="model folder (default: models.dir / env)")
    embed.set_defaults(func=run_embed)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="edge TOML config ([fleet] keys, store, model pack)")
    parser.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    parser.add_argument("--key-file", type=Path, help="store key file (default: from config/env)")
    parser.add_argument("--hq-key", type=Path,
                        help="head office's public key (default: [fleet] hq_public_key)")
    parser.add_argument("--branch-key", type=Path,
                        help="this branch's private key (default: [fleet] branch_key)")
    parser.add_argument("--models", type=Path, help="model folder (default: models.dir / env)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run_keygen(args: argparse.Namespace) -> int:
    from edge.fleet.keys import generate_branch_key

    pem = generate_branch_key(args.out / "branch.key", args.out / "branch.pub.pem")
    print(f"wrote {args.out / 'branch.key'} (keep it on this PC) and {args.out / 'branch.pub.pem'} "
          "(give it to head office)")
    print(pem.decode("ascii"), end="")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from edge.commands.erase import outboxes_of
    from edge.config import load_config
    from edge.fleet.contract import branch_contract
    from edge.fleet.importer import RefusalError, import_package
    from edge.fleet.keys import load_fleet_keys
    from edge.store.database import open_configured
    from edge.store.retention import known_outboxes
    from mqtt.files import read_bounded
    from mqtt.package import MAX_PACKAGE_BYTES

    cfg = load_config(args.config)
    keys = load_fleet_keys(cfg.fleet, args.hq_key, args.branch_key)
    contract = branch_contract(cfg, args.models)
    try:
        data = read_bounded(args.package, MAX_PACKAGE_BYTES, "package")
    except OSError as err:
        print(f"branch-edge fleet import: error: cannot read {args.package}: {err}", file=sys.stderr)
        return 2
    with open_configured(cfg.store, args.db, args.key_file, create=False) as store:
        try:
            result = import_package(data, store, branch_id=cfg.branch_id, contract=contract, keys=keys,
                                    outboxes=lambda: outboxes_of(cfg, known_outboxes(store)))
        except RefusalError as err:
            if args.json:
                print(json.dumps({"state": "refused", "reason": err.reason, "error": str(err)}, indent=2))
            print(f"branch-edge fleet import: refused ({err.reason}): {err}", file=sys.stderr)
            return 3
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"gallery package version {result.version}: {result.state}; {result.customers_added} "
              f"customers, {result.templates_added} templates added, {result.erasures_applied} erasures "
              f"applied, {len(result.skipped)} customers skipped (consent withdrawn here)")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.fleet.contract import branch_contract
    from edge.fleet.erasure import last_erasure
    from edge.fleet.importer import gallery_version
    from edge.store.database import open_configured

    cfg = load_config(args.config)
    contract = branch_contract(cfg, args.models)
    with open_configured(cfg.store, args.db, args.key_file, create=False) as store:
        last = last_erasure(store)
        version = gallery_version(store)
    erasure = {"erasure_id": last[0], "applied_at": last[1].isoformat()} if last else None
    if args.json:
        print(json.dumps({"branch_id": cfg.branch_id, "gallery_version": version,
                          "contract": contract.to_dict(), "last_erasure": erasure}, indent=2))
    else:
        print(f"branch {cfg.branch_id}: gallery version {version} (model pack {contract.model_pack}); "
              "last head-office erasure: "
              + (f"{erasure['erasure_id']} at {erasure['applied_at']}" if erasure else "none"))
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.enrol.sources import customers_from_csv, customers_from_folders
    from edge.fleet.contract import branch_contract
    from edge.vision.engine import FaceEngine

    cfg = load_config(args.config)
    if args.customers is not None:
        customers = customers_from_csv(args.photos, args.customers)
    else:
        customers, _ = customers_from_folders(args.photos, args.consent_channel)
    contract = branch_contract(cfg, args.models)
    engine = FaceEngine.from_config(cfg, args.models)
    out = {"format": "branch-edge-templates/1", "contract": contract.to_dict(),
           "customers": [embed_customer(engine, cfg, c) for c in customers]}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


def embed_customer(engine: Any, cfg: Any, customer: Any) -> dict[str, Any]:
    """One customer's templates (the main face of each photo that passes the quality gate) and
    the photos rejected, with the enrolment's reason codes."""
    from edge.core.errors import ImageError
    from edge.enrol.sources import read_photo
    from edge.vision.imageio import MAX_IMAGE_BYTES, decode_checked

    templates, rejected = [], []
    for item in customer.photos:
        try:
            data = read_photo(item, MAX_IMAGE_BYTES)
            image = decode_checked(data, item.name).image
        except ImageError as err:
            rejected.append({"photo": item.name, "reason": err.code})
            continue
        observations = engine.analyze(image)
        if not observations:
            rejected.append({"photo": item.name, "reason": "no_face"})
            continue
        main = observations[0]
        failures = main.quality.failures(cfg.quality)
        if failures:
            rejected.append({"photo": item.name, "reason": failures[0]})
            continue
        vector = main.embedding.astype("<f4").tobytes()
        templates.append({"source_sha256": hashlib.sha256(data).hexdigest(),
                          "embedding": base64.b64encode(vector).decode("ascii"),
                          "det_score": round(float(main.quality.det_score), 3)})
    consent_time = customer.consent_time.isoformat() if customer.consent_time else None
    return {"customer_id": customer.customer_id, "display_name": customer.display_name or "",
            "tier": customer.tier or "", "assigned_rm": customer.assigned_rm or "",
            "consent_channel": customer.consent_channel, "consent_time": consent_time,
            "templates": templates, "rejected": rejected}

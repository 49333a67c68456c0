"""``branch-edge models verify``: digest, licence and status of every file of a pack, and
whether a bank may use the pack commercially (``models list`` says it for every pack)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.config import load_config
from models.pack import (
    DigestPins,
    FileCheck,
    ModelPack,
    available_packs,
    describe_failure,
    load_pack,
    resolve_models_dir,
    verify_pack,
)

# The pack's verdict from its files' licences (the least permissive file decides).
COMMERCIAL_TEXT = {
    "yes": "commercial use permitted by every file's licence",
    "review": "commercial use needs legal review (a file's licence or training data is unclear)",
    "no": "NOT for commercial use (a file is licensed for research only)",
}

STATUS_TEXT = {
    "ok": "ok",
    "pinned": "ok (pinned on first use)",
    "newly-pinned": "unpinned: pinned at first load",
    "missing": "MISSING",
    "mismatch": "DIGEST MISMATCH",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("models", help="model packs: list and verify")
    msub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    verify = msub.add_parser("verify", help="check every file's digest and show its licence")
    verify.add_argument("--pack", help="pack id or manifest path (default: from config)")
    verify.add_argument("--models", type=Path, help="folder with the ONNX files")
    verify.add_argument("--config", type=Path, help="edge TOML config")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(func=run_verify)
    listing = msub.add_parser("list", help="list the shipped packs")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)


def check_row(check: FileCheck) -> dict[str, object]:
    return {
        "role": check.spec.role,
        "file": check.spec.file,
        "path": str(check.path),
        "status": check.status,
        "ok": check.ok,
        "sha256": check.actual_sha256,
        "expected_sha256": check.expected_sha256,
        "licence": check.spec.licence,
        "research_only": check.spec.research_only,
        "commercial_use": check.spec.commercial_use,
        "problem": "" if check.ok else describe_failure(check),
    }


def print_table(pack: ModelPack, root: Path, rows: list[dict[str, object]]) -> None:
    print(f"pack {pack.id}  ({root})")
    print(f"{'role':<11} {'file':<43} {'status':<31} {'sha256':<14} {'commercial':<11} licence")
    for r in rows:
        digest = str(r["sha256"])[:12] or "-"
        flag = " [RESEARCH ONLY]" if r["research_only"] else ""
        print(f"{r['role']:<11} {r['file']:<43} {STATUS_TEXT[str(r['status'])]:<31} {digest:<14} "
              f"{r['commercial_use']!s:<11} {r['licence']}{flag}")
    print(f"pack {pack.id}: {COMMERCIAL_TEXT[pack.commercial_use]}")
    for r in rows:
        if r["problem"]:
            print(f"  problem: {r['problem']}")


def run_verify(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    pack = load_pack(args.pack or cfg.models.pack)
    root = resolve_models_dir(pack, args.models, cfg.models.dir)
    rows = [check_row(c) for c in verify_pack(pack, root, DigestPins())]
    ok = all(r["ok"] for r in rows)
    if args.json:
        print(json.dumps({"pack": pack.id, "models_dir": str(root), "ok": ok,
                          "commercial_use": pack.commercial_use, "files": rows}, indent=2))
    else:
        print_table(pack, root, rows)
        print("all files verified" if ok else "VERIFICATION FAILED")
    return 0 if ok else 1


def run_list(args: argparse.Namespace) -> int:
    packs = [load_pack(p) for p in available_packs()]
    if args.json:
        rows = [{"id": p.id, "name": p.name, "description": p.description,
                 "commercial_use": p.commercial_use} for p in packs]
        print(json.dumps(rows, indent=2))
        return 0
    for p in packs:
        print(f"{p.id:<10} {p.name}\n{'':<10} {p.description}\n{'':<10} {COMMERCIAL_TEXT[p.commercial_use]}")
    return 0

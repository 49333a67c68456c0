#!/usr/bin/env python3
"""Mutation testing (``make mutate``): do the tests notice small faults in the code?

Two parts, each on a copy of the committed tree (``git archive HEAD``, or the working tree
with ``--source worktree``) in a temporary folder, so no file anyone is editing is touched:

1. mutmut over three scopes, each with its own tests (``SCOPES``): the pure core
   (edge/core), the MQTT layer (mqtt), and the wiring functions that erasure, visits, the
   outbox and consent go through (the daemon, the lobby pipeline, the teller page).  mutmut
   records which tests run each function and judges a mutant by those tests only.  A
   deterministic sample of the mutants (a hash of each mutant's name) keeps a run within
   about half an hour on two busy cores; ``--sample 1`` runs them all.  Log-call lines are
   not mutated (what a log message says is not behaviour the tests pin).
2. The named wiring mutations (``WIRING``): each one a one-line patch applied to the copy,
   only its killing test run, the file restored (even on failure).  Each must be killed.

Prints a table and writes a JSON summary (``--json``): per scope and module the mutants
tried, killed, survived, without tests, and the survival rate ((survived + no tests) / tried,
with a 95% Wilson interval when sampled); per named mutation killed/survived.  Exit status 1
when a named wiring mutation survives or no longer applies, when the unmutated killing tests
fail, or when mutmut fails (e.g. its clean run of a scope's tests).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import hashlib
import io
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
MUTMUT = PYTHON.parent / "mutmut"
PACKAGES = ("edge", "mqtt", "ui", "models", "hq")  # copied whole, so every import resolves in the copy
# A log call's text is not behaviour: mutants of those lines would only measure log assertions.
DO_NOT_MUTATE = (r"^\s*(log|logger|_log)\.(debug|info|warning|error|exception)\(",)


@dataclass(frozen=True)
class Scope:
    name: str
    mutate: tuple[str, ...]  # file globs (mutmut only_mutate)
    tests: tuple[str, ...]  # pytest selection for mutmut's map of tests per function
    functions: tuple[str, ...] = ()  # mutant-name globs; empty: every function of the files
    sample: float = 0.05  # the default fraction of mutants run (``--sample`` overrides)
    # "forkserver": each mutant forks from a process that never ran a test (no model sessions,
    # Qt application or MQTT threads to inherit); "fork": from the one that ran them all (faster)
    isolation: str = "fork"


ERASURE = "tests/integration/test_erasure_daemon.py::"
SCOPES: dict[str, Scope] = {
    "core": Scope("core", ("edge/core/*.py",),
                  ("tests/unit/core", "tests/unit/crm/test_talking_points.py",  # life events, bands
                   "tests/unit/test_unsafe_paths.py", "tests/unit/test_private_files.py",  # files
                   "tests/unit/test_config.py")),  # errors
    "mqtt": Scope(
        "mqtt",
        ("mqtt/*.py", "mqtt/provision/*.py"),
        ("tests/unit/mqtt", "tests/unit/hq/test_package_format.py",
         "tests/integration/test_mqtt_broker.py", "tests/integration/test_outbox_puback.py",
         "tests/integration/test_mqtt_embedded.py", "tests/integration/test_mqtt_cli.py",
         "tests/integration/test_mqtt_noloss.py::test_seen_ids_survive_a_restart_and_stay_bounded",
         "tests/integration/test_mqtt_noloss.py::"
         "test_outbox_keeps_order_ignores_repeated_ids_and_survives_reopening"),
        sample=0.04,
        isolation="forkserver",
    ),
    "wiring": Scope(
        "wiring",
        ("edge/lobby/daemon.py", "edge/lobby/pipeline.py", "ui/pages/teller.py"),
        (ERASURE + "test_an_erasure_between_acceptance_and_arrival_withholds_the_arrival",
         ERASURE + "test_an_accepted_track_of_an_erased_customer_ends_at_the_gallery_reload",
         ERASURE + "test_a_customer_still_in_front_of_the_camera_keeps_one_visit",
         "tests/integration/test_teller_consent.py", "tests/unit/ui/test_scenario_pages.py"),
        functions=tuple(
            f"{module}.xǁ{cls}ǁ{func}__mutmut_*" for module, cls, func in (
                ("edge.lobby.daemon", "PipelineWorker", "_arrive"),
                ("edge.lobby.daemon", "PipelineWorker", "_housekeeping"),
                ("edge.lobby.daemon", "PipelineWorker", "_reload_gallery_if_changed"),
                ("edge.lobby.pipeline", "LobbyPipeline", "swap_gallery"),
                ("edge.lobby.pipeline", "LobbyPipeline", "present"),
                ("ui.pages.teller", "TellerPage", "build_request"),
            )),
        sample=0.08,
        isolation="forkserver",
    ),
}


@dataclass(frozen=True)
class Wiring:
    """One named mutation: the line ``old`` (compared stripped; exactly one in ``path``)
    becomes ``new`` (indented like it); ``tests`` must then fail."""

    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PUBACK_TEST = ("tests/integration/test_outbox_puback.py::"
               "test_rows_stay_in_the_outbox_until_the_broker_acknowledges_them",)
CONSENT_TEST = ("tests/integration/test_teller_consent.py::test_without_consent_no_live_frame_is_published",)
WIRING: tuple[Wiring, ...] = (
    Wiring("outbox-removes-before-puback",
           "the outbox sender removes a row without waiting for its PUBACK",
           "mqtt/client.py",
           "if info.is_published():",
           "if True:  # mutation: removed before PUBACK",
           PUBACK_TEST),
    Wiring("outbox-removes-on-send",
           "the outbox sender removes a row as soon as it is handed to paho",
           "mqtt/client.py",
           "self._inflight[item.seq] = info  # paho keeps it and resends after a reconnect",
           "self._inflight[item.seq] = info; self.outbox.remove(item.seq)  # mutation",
           PUBACK_TEST),
    Wiring("daemon-skips-consent-check",
           "the daemon builds an arrival without checking the customer's consent",
           "edge/lobby/daemon.py",
           "if self.store.active_consent(customer.customer_id) is None:"
           "  # withdrawn; gallery not yet reloaded",
           "if False:  # mutation: no consent check before an arrival",
           (ERASURE + "test_an_erasure_between_acceptance_and_arrival_withholds_the_arrival",)),
    Wiring("lobby-keeps-erased-track",
           "the lobby keeps an erased customer's accepted track after a gallery swap",
           "edge/lobby/pipeline.py",
           'if state.evidence.state == "pending" or (cid and cid not in gallery.customers):',
           'if state.evidence.state == "pending":  # mutation: accepted tracks survive the swap',
           (ERASURE + "test_an_accepted_track_of_an_erased_customer_ends_at_the_gallery_reload",)),
    Wiring("daemon-never-touches-visits",
           "the daemon never calls the visit book's touch",
           "edge/lobby/daemon.py",
           "self.visits.touch(self.pipeline.present(), self._latest_ts)",
           "pass  # mutation: the visit book is never touched",
           (ERASURE + "test_a_customer_still_in_front_of_the_camera_keeps_one_visit",)),
    Wiring("teller-frames-without-consent",
           "the teller page sends its captured live frames without consent",
           "ui/pages/teller.py",
           "own_frames = self.consent.isChecked() and not from_counter",
           "own_frames = not from_counter  # mutation: consent ignored",
           CONSENT_TEST),
    Wiring("teller-counter-camera-without-consent",
           "the teller page asks the edge's counter camera for frames without consent",
           "ui/pages/teller.py",
           "from_counter = self.consent.isChecked() and self.use_counter_camera.isChecked()",
           "from_counter = self.use_counter_camera.isChecked()  # mutation: consent ignored",
           CONSENT_TEST),
)

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code, 3.x), grouped.
KILLED = {1, 3, 24, -24, 152, 255, 36, -9, -11}  # failed, internal error, CPU timeout, killed
SURVIVED = {0}
NO_TESTS = {5, 33}
SKIPPED = {34, 37}


def log(text: str) -> None:
    print(text, flush=True)


# --- copies of the tree ---------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout


def export_tree(dest: Path, source: str, commit: str) -> None:
    """The tree of ``commit`` (``head``: every copy of one run is of the same commit, however
    the branch moves meanwhile) or the working tree's tracked and unignored files."""
    dest.mkdir(parents=True)
    if source == "head":
        data = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, check=True,
                              capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")
        return
    listing = git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listing.split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_child(cmd: list[str], cwd: Path, env: dict[str, str], out: Any, timeout: float | None = None) -> int:
    """Run ``cmd`` in its own process group; if this script is stopped (Ctrl-C, SIGTERM) or the
    timeout passes, the whole group goes (pytest and the brokers its tests started)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        return proc.wait(timeout)
    except BaseException:
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(grace)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        raise


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def test_env(pythonpath: Path) -> dict[str, str]:
    env = dict(os.environ)
    shared = REPO.parent / "shared"
    env.setdefault("BRANCH_EDGE_MODELS", str(shared / "models"))
    env.setdefault("BRANCH_EDGE_DATA", str(shared / "data"))
    env["QT_QPA_PLATFORM"] = "offscreen"
    # Subprocesses the tests start (the CLI, publishers) import the copy, not the editable install.
    env["PYTHONPATH"] = str(pythonpath)
    env.pop("MUTANT_UNDER_TEST", None)
    return env


# --- part 1: mutmut ---------------------------------------------------------------------


def mutmut_config(scope: Scope) -> str:
    def lines(values: Iterable[str]) -> str:
        return "".join(f"\n    {v}" for v in values)

    return (
        "\n[mutmut]\n"
        f"source_paths ={lines(PACKAGES)}\n"
        f"only_mutate ={lines(scope.mutate)}\n"
        f"do_not_mutate_patterns ={lines(DO_NOT_MUTATE)}\n"
        f"pytest_add_cli_args_test_selection ={lines(scope.tests)}\n"
        "pytest_add_cli_args =\n    -q\n"
        "use_git_change_detection = false\n"
        "use_setproctitle = false\n"
        f"process_isolation = {scope.isolation}\n"
    )


GENERATE = """
import os, sys
from mutmut.__main__ import create_mutants
from mutmut.mutation.trampoline import set_mutant_under_test
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir
set_mutant_under_test("mutant_generation")
os.makedirs("mutants", exist_ok=True)
copy_src_dir()
copy_also_copy_files()
create_mutants(int(sys.argv[1]))
"""


def mutant_names(root: Path) -> dict[str, int | None]:
    """Every generated mutant and its recorded exit code (``None``: not run)."""
    out: dict[str, int | None] = {}
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        out.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return out


def sampled(name: str, fraction: float) -> bool:
    """Deterministic: the same mutant is in or out of every run with the same fraction."""
    if fraction >= 1:
        return True
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def module_of(name: str) -> str:
    return name.split(".x_", 1)[0].split(".xǁ", 1)[0]


def verdict(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no_tests"
    if code in SKIPPED:
        return "skipped"
    if code is None:
        return "not_run"
    return "suspicious"


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def summarise(verdicts: Iterable[str], generated: int, fraction: float) -> dict[str, Any]:
    counts = Counter(verdicts)
    tried = counts["killed"] + counts["survived"] + counts["no_tests"] + counts["suspicious"]
    alive = counts["survived"] + counts["no_tests"]
    out: dict[str, Any] = {
        "generated": generated, "tried": tried, "killed": counts["killed"],
        "survived": counts["survived"], "no_tests": counts["no_tests"],
        "suspicious": counts["suspicious"], "not_run": counts["not_run"] + counts["skipped"],
        "survival_rate": round(alive / tried, 4) if tried else None,
    }
    if fraction < 1 and tried:
        out["survival_rate_ci95"] = wilson(alive, tried)
    return out


def run_scope(scope: Scope, work: Path, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    fraction = args.sample if args.sample is not None else scope.sample
    root = work / scope.name
    export_tree(root, args.source, args.commit)
    with (root / "setup.cfg").open("a", encoding="utf-8") as cfg:
        cfg.write(mutmut_config(scope))
    env = test_env(root / "mutants")
    log_path = logs / f"mutmut-{scope.name}.log"
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as out:
        if run_child([str(PYTHON), "-c", GENERATE, str(args.jobs)], root, env, out) != 0:
            raise RuntimeError(f"mutmut could not generate the mutants; see {log_path}")
    generated = {n: c for n, c in mutant_names(root).items()
                 if not scope.functions or any(fnmatch.fnmatchcase(n, g) for g in scope.functions)}
    chosen = sorted(n for n in generated if sampled(n, fraction))
    log(f"[{scope.name}] {len(generated)} mutants generated, {len(chosen)} sampled "
        f"(fraction {fraction}); tests: {' '.join(scope.tests)}; log: {log_path}")
    rc = 0
    if chosen:
        with log_path.open("a", encoding="utf-8") as out:
            rc = run_child([str(MUTMUT), "run", "--max-children", str(args.jobs), *chosen], root, env, out)
    codes = mutant_names(root)
    per_module: dict[str, list[str]] = defaultdict(list)
    generated_per_module: Counter[str] = Counter(module_of(n) for n in generated)
    for name in chosen:
        per_module[module_of(name)].append(verdict(codes.get(name)))
    survivors = sorted(n for n in chosen if verdict(codes.get(n)) in ("survived", "no_tests"))
    result = summarise((v for vs in per_module.values() for v in vs), len(generated), fraction)
    result.update(
        sample=fraction,
        mutmut_exit=rc, seconds=round(time.monotonic() - started, 1), tests=list(scope.tests),
        mutated=list(scope.functions or scope.mutate),
        modules={m: summarise(per_module[m], generated_per_module[m], fraction)
                 for m in sorted(generated_per_module)},
        survivors=survivors,
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return result


# --- part 2: the named wiring mutations ---------------------------------------------------


def pytest_run(root: Path, tests: Iterable[str], log_path: Path, timeout: float) -> str:
    """``passed``, ``failed``, ``timeout`` or ``error:<exit code>`` (collection, usage...)."""
    cmd = [str(PYTHON), "-m", "pytest", "-q", "-x", *tests]
    with log_path.open("a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            rc = run_child(cmd, root, test_env(root), out, timeout)
        except subprocess.TimeoutExpired:
            return "timeout"
    return {0: "passed", 1: "failed"}.get(rc, f"error:{rc}")


def apply(root: Path, mutation: Wiring) -> str:
    """Patch the copy; returns the original text.  Raises ValueError unless exactly one line matches."""
    path = root / mutation.path
    original = path.read_text(encoding="utf-8")
    lines = original.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip() == mutation.old]
    if len(hits) != 1:
        raise ValueError(f"{mutation.path}: {len(hits)} lines read {mutation.old!r} (expected one)")
    line = lines[hits[0]]
    indent = line[: len(line) - len(line.lstrip())]
    lines[hits[0]] = f"{indent}{mutation.new}\n"
    path.write_text("".join(lines), encoding="utf-8")
    return original


def run_wiring(work: Path, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    root = work / "wiring-checks"
    export_tree(root, args.source, args.commit)
    log_path = logs / "wiring.log"
    log_path.write_text("", encoding="utf-8")
    chosen = [w for w in WIRING if not args.only or w.name in args.only]
    tests = sorted({t for w in chosen for t in w.tests})
    started = time.monotonic()
    baseline = pytest_run(root, tests, log_path, args.test_timeout)
    log(f"[wiring] baseline (unmutated) of {len(tests)} killing tests: {baseline}")
    rows: list[dict[str, Any]] = []
    for mutation in chosen:
        row: dict[str, Any] = {"name": mutation.name, "what": mutation.what, "path": mutation.path,
                               "tests": list(mutation.tests)}
        if baseline != "passed":
            row["result"] = "not_run (baseline failed)"
        else:
            try:
                original = apply(root, mutation)
            except ValueError as err:
                row["result"] = f"error: {err}"
            else:
                try:
                    outcome = pytest_run(root, mutation.tests, log_path, args.test_timeout)
                finally:
                    (root / mutation.path).write_text(original, encoding="utf-8")
                row["tests_outcome"] = outcome
                row["result"] = {"failed": "killed", "timeout": "killed", "passed": "survived"}.get(
                    outcome, f"error: pytest {outcome}")
        log(f"[wiring] {mutation.name}: {row['result']}")
        rows.append(row)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "baseline": baseline, "seconds": round(time.monotonic() - started, 1), "mutations": rows,
        "killed": sum(r["result"] == "killed" for r in rows),
        "survived": sum(r["result"] == "survived" for r in rows),
        "errors": sum(r["result"] not in ("killed", "survived") for r in rows),
    }


# --- report -------------------------------------------------------------------------------


def rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_report(report: dict[str, Any]) -> None:
    log("")
    log(f"mutation testing at {report['commit'][:12]} ({report['source']})")
    if report.get("mutmut"):
        log(f"{'scope / module':44} {'gen':>5} {'tried':>5} {'killed':>6} {'surv':>5} {'no-t':>5} "
            f"{'rate':>7}")
        for name, scope in report["mutmut"].items():
            rows = [(f"{name} (all, sample {scope['sample']})", scope)]
            rows += [(f"  {m}", s) for m, s in scope["modules"].items()]
            for label, s in rows:
                ci = s.get("survival_rate_ci95")
                extra = f"  [{rate(ci[0])}, {rate(ci[1])}]" if ci else ""
                log(f"{label:44} {s['generated']:5} {s['tried']:5} {s['killed']:6} {s['survived']:5} "
                    f"{s['no_tests']:5} {rate(s['survival_rate']):>7}{extra}")
    if report.get("wiring"):
        w = report["wiring"]
        log(f"named wiring mutations: {w['killed']} killed, {w['survived']} survived, {w['errors']} errors "
            f"(baseline {w['baseline']})")
        for row in w["mutations"]:
            log(f"  {row['result']:10} {row['name']}: {row['what']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "mutmut", "wiring"), default="all")
    parser.add_argument("--scope", action="append", choices=sorted(SCOPES),
                        help="mutmut scope (repeatable; default: all)")
    parser.add_argument("--only", action="append", choices=[w.name for w in WIRING],
                        help="named wiring mutation (repeatable; default: all)")
    parser.add_argument("--sample", type=float, default=None,
                        help="fraction of each scope's mutants to run, 0-1 (default: the scope's own, "
                             + ", ".join(f"{s.name} {s.sample}" for s in SCOPES.values()) + ")")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--source", choices=("head", "worktree"), default="head",
                        help="the committed tree (default) or the working tree as it is")
    parser.add_argument("--test-timeout", type=float, default=900.0,
                        help="seconds for one pytest run of the wiring check")
    parser.add_argument("--json", type=Path, default=REPO / "reports" / "mutation.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    args = parser.parse_args(argv)
    if args.sample is not None and not 0 < args.sample <= 1:
        parser.error("--sample must be in (0, 1]")

    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # so that the copies and child processes go too
    args.commit = git("rev-parse", "HEAD").strip()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    logs = args.json.parent / "mutation-logs"
    logs.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": args.commit, "source": args.source,
        "dirty_files": len(git("status", "--porcelain").splitlines()) if args.source == "worktree" else None,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_at_start": [round(x, 2) for x in os.getloadavg()]},
        "mutmut_version": subprocess.run([str(PYTHON), "-c", "import importlib.metadata as m;"
                                          "print(m.version('mutmut'))"],
                                         capture_output=True, text=True, check=False).stdout.strip(),
    }
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="branch-edge-mutate-"))
    try:
        if args.part in ("all", "wiring"):
            report["wiring"] = run_wiring(work, args, logs)
        if args.part in ("all", "mutmut"):
            report["mutmut"] = {name: run_scope(SCOPES[name], work, args, logs)
                                for name in (args.scope or list(SCOPES))}
    finally:
        if args.keep:
            log(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.monotonic() - started, 1)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_report(report)
    log(f"\nJSON: {args.json}")
    wiring = report.get("wiring")
    failed_scopes = [n for n, s in report.get("mutmut", {}).items() if s["mutmut_exit"] != 0]
    if failed_scopes:
        log(f"mutmut failed in {', '.join(failed_scopes)} (see the logs in {logs})")
    return 1 if failed_scopes or (wiring is not None and (wiring["survived"] or wiring["errors"])) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:
        sys.exit(f"stopped ({stop or 'interrupted'}); the copies and their processes are gone")

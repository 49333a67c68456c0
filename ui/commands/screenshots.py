"""``branch-pad screenshots --out docs/screenshots``: the documentation's pictures of the app,
rendered offscreen from the real widgets with fictional data (``ui.scenes``): each scene on
its screens, in zh-CN and English, as ``pad-<scene>-<language>-<WxH>.png``.

A screen where a text does not fit (``ui.fit``) is not saved: the command lists the problems
and exits 1, so the pictures in the docs never show a cut text.  Exit 0 when all were saved.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_CLIPPED = 0, 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("screenshots", help="render the documentation's screenshots of the app "
                                                       "(fictional data, offscreen)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"),
                        help="folder for the PNGs (default: docs/screenshots)")
    parser.add_argument("--scene", action="append", choices=("card", "outcome", "teller", "supervisor"),
                        help="only this scene (repeatable; default: all)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # the same pixels on every machine, display or not
    from PyQt6.QtCore import qInstallMessageHandler  # noqa: PLC0415 - Qt only for this command
    from PyQt6.QtWidgets import QApplication  # noqa: PLC0415

    from ui.app import quiet_offscreen  # noqa: PLC0415
    from ui.fit import clipped  # noqa: PLC0415
    from ui.scenes import LANGUAGES, SCENES, SIZES, close_window, scene_window  # noqa: PLC0415
    from ui.screenshots import save_png  # noqa: PLC0415

    qInstallMessageHandler(quiet_offscreen)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    failed = 0
    for name, scene in SCENES.items():
        if args.scene and name not in args.scene:
            continue
        for size in scene.sizes:
            for language in LANGUAGES:
                win = scene_window(scene.role, language, SIZES[size])
                try:
                    scene.fill(win)
                    problems = clipped(win, SIZES[size])
                    path = args.out / f"pad-{name}-{language}-{size}.png"
                    if problems:
                        failed += 1
                        print(f"{path}: not saved, a text does not fit:", file=sys.stderr)
                        for problem in problems:
                            print(f"  {problem}", file=sys.stderr)
                        continue
                    save_png(win, path)
                    path.chmod(0o644)  # fictional data, for the documentation
                    print(path)
                finally:
                    close_window(win)
    app.processEvents()
    return EXIT_CLIPPED if failed else EXIT_OK

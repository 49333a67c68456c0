"""``branch-pad screenshots``: one command renders the documentation's pictures from the real
widgets, each scene on its screens in both languages; a screen with a text that does not fit is
not saved and the command fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtGui import QImage

from ui import cli, scenes
from ui.scenes import LANGUAGES, SCENES, SIZES, Scene
from ui.window import PadWindow

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def test_every_scene_on_its_screens_in_both_languages(qtbot, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["screenshots", "--out", str(tmp_path)]) == 0
    expected = {f"pad-{name}-{language}-{size}.png" for name, scene in SCENES.items()
                for size in scene.sizes for language in LANGUAGES}
    assert {p.name for p in tmp_path.glob("*.png")} == expected
    assert {s for scene in SCENES.values() for s in scene.sizes} == set(SIZES)
    for name in expected:
        image = QImage(str(tmp_path / name))
        size = name.rsplit("-", 1)[1].removesuffix(".png")
        assert (image.width(), image.height()) == SIZES[size], name
        colours = {image.pixel(x, y) for x in range(0, image.width(), 13)
                   for y in range(0, image.height(), 13)}
        assert len(colours) > 40, f"{name} looks empty"
    assert len(capsys.readouterr().out.splitlines()) == len(expected)


def test_a_screen_with_a_cut_text_is_not_saved(qtbot, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    def too_long(win: PadWindow) -> None:
        scenes.fill_card(win)
        win.header.language.setText("English " * 30)  # a button does not wrap

    monkeypatch.setitem(SCENES, "card", Scene("rm", too_long, ("800x1280",)))
    assert cli.main(["screenshots", "--out", str(tmp_path), "--scene", "card"]) == 1
    assert not list(tmp_path.glob("*.png"))
    assert "not saved, a text does not fit" in capsys.readouterr().err

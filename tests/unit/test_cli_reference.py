"""The command line as the reference shows it: every option and positional of every
sub-command of branch-edge and branch-pad has help text, both programs say their
version, and no command is reachable under two names."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from importlib import metadata

import pytest

import edge.cli
import ui.cli

PARSERS = {"branch-edge": edge.cli.build_parser, "branch-pad": ui.cli.build_parser}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``parser`` and every sub-command parser below it, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*path, name))


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            described = {choice.dest for choice in action._choices_actions if choice.help}
            missing += [f"sub-command {name}" for name in action.choices if name not in described]
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


@pytest.mark.parametrize("program", sorted(PARSERS))
def test_every_option_and_positional_has_help(program: str) -> None:
    gaps = {" ".join(path): missing for path, parser in commands(PARSERS[program](), (program,))
            if (missing := undocumented(parser))}
    assert gaps == {}


def test_the_walk_sees_the_nested_sub_commands() -> None:
    # Guards the test above: an empty walk would pass it vacuously.
    edge_paths = {" ".join(p) for p, _ in commands(edge.cli.build_parser(), ("branch-edge",))}
    pad_paths = {" ".join(p) for p, _ in commands(ui.cli.build_parser(), ("branch-pad",))}
    assert {"branch-edge synth lobby", "branch-edge bench notify", "branch-edge crm show",
            "branch-edge models list", "branch-edge soak"} <= edge_paths
    assert "branch-pad idcard read" in pad_paths


@pytest.mark.parametrize("program", sorted(PARSERS))
def test_version_prints_the_package_version(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = edge.cli.main if program == "branch-edge" else ui.cli.main
    code: int | str | None
    try:
        code = main(["--version"])
    except SystemExit as done:
        code = done.code
    assert code == 0
    assert capsys.readouterr().out.strip() == f"{program} {metadata.version('branch-edge')}"


@pytest.mark.parametrize("program", sorted(PARSERS))
def test_no_command_is_reachable_under_two_names(program: str) -> None:
    seen: dict[object, str] = {}
    for path, parser in commands(PARSERS[program](), (program,)):
        func = parser.get_default("func")
        if func is None:
            continue
        where = " ".join(path)
        assert func not in seen, f"{where} runs the same code as {seen[func]}"
        seen[func] = where


def test_the_mqtt_benchmark_lives_under_bench_only(capsys: pytest.CaptureFixture[str]) -> None:
    paths = {" ".join(p) for p, _ in commands(edge.cli.build_parser(), ())}
    assert "bench mqtt" in paths
    assert "mqtt bench" not in paths
    with pytest.raises(SystemExit) as refused:
        edge.cli.main(["mqtt", "bench"])
    assert refused.value.code == 2
    assert "invalid choice: 'bench'" in capsys.readouterr().err

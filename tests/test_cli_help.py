"""``--help`` of every command describes the command and every one of its options."""
from __future__ import annotations

import argparse

import pytest

from photocull.cli import build_parser, main

COMMANDS = ("gui", "score", "demo", "prepare", "export", "rate", "trash-rejects",
            "learn", "train", "evaluate", "train-technical")


def commands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str | None]]:
    """name -> (its sub-parser, the help line ``photocull --help`` gives it), at every level."""
    out = {}
    for action in parser._actions:
        if action.nargs != argparse.PARSER:
            continue
        helps = {a.dest: a.help for a in action._get_subactions()}
        for name, sub in action.choices.items():
            out[name] = (sub, helps.get(name))
            out.update(commands(sub))
    return out


def undescribed(parser: argparse.ArgumentParser) -> list[str]:
    """The options and arguments of ``parser`` with no help text (sub-commands aside)."""
    return [a.option_strings[-1] if a.option_strings else a.metavar or a.dest
            for a in parser._actions
            if a.nargs != argparse.PARSER and (a.help is None or a.help == argparse.SUPPRESS or not a.help.strip())]


def test_every_command_is_walked():
    assert set(commands(build_parser())) == set(COMMANDS)


def test_the_top_level_options_have_help():
    ap = build_parser()
    assert ap.description and undescribed(ap) == []


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_a_description_and_every_option_help(name):
    sub, help_line = commands(build_parser())[name]
    assert help_line and help_line.strip(), f"{name}: no help line in `photocull --help`"
    assert sub.description and sub.description.strip(), f"`photocull {name} --help` has no description"
    assert undescribed(sub) == [], f"`photocull {name} --help` leaves these undescribed"


def test_the_walk_finds_what_is_missing():
    """The checks above can fail: a parser with a bare option and a bare command is caught."""
    ap = argparse.ArgumentParser(description="x")
    ap.add_argument("--bare")
    sub = ap.add_subparsers()
    s = sub.add_parser("bare")
    s.add_argument("thing")
    s.add_argument("--quiet", action="store_true", help="")
    assert undescribed(ap) == ["--bare"]
    found = commands(ap)
    assert set(found) == {"bare"}
    sub_parser, help_line = found["bare"]
    assert help_line is None and sub_parser.description is None
    assert undescribed(sub_parser) == ["thing", "--quiet"]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_prints_and_exits_cleanly(name, capsys):
    with pytest.raises(SystemExit) as ei:
        main([name, "--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: photocull {name}")
    assert "show this help message" in out


@pytest.mark.parametrize("name", COMMANDS)
def test_home_and_verbose_are_taken_before_or_after_the_command(name, tmp_path):
    """``photocull score DIR --home H`` as well as ``photocull --home H score DIR`` (it was
    "unrecognized arguments: --home"); given after the command it wins; not given there, the
    value given before it stays."""
    ap = build_parser()
    labels = ["--dataset", "csv", "--labels", "l.csv"]
    need = {"score": ["x"], "export": ["a", "b", "--picks"], "rate": ["x", "--stars", "3"], "trash-rejects": ["x"],
            "learn": ["r.csv", "--name", "n"], "train": labels, "evaluate": labels, "train-technical": ["d", "--out", "m"]}
    rest = need.get(name, [])
    after = ap.parse_args([name, *rest, "--home", str(tmp_path), "-v"])
    assert after.home == str(tmp_path) and after.verbose
    before = ap.parse_args(["--home", "H", "-v", name, *rest])
    assert before.home == "H" and before.verbose
    both = ap.parse_args(["--home", "H", name, *rest, "--home", str(tmp_path)])
    assert both.home == str(tmp_path)
    plain = ap.parse_args([name, *rest])
    assert plain.home is None and plain.verbose is False

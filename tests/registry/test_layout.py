"""The top-level ``registry/`` folder stays a view of the package: it may point at the package's files and
describe them, never hold a copy that could drift from what ``genre.registry`` does."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from genre import settings
from genre.cli import build_parser
from genre.registry.registration import MODEL_CARD_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "registry"
README = FOLDER / "README.md"

#: The aliases genre.settings defines (the registry moves exactly these).
ALIASES = {settings.CHAMPION, settings.PREVIOUS, settings.CHALLENGER}


def _commands(prefix: str) -> list[list[str]]:
    """The command lines in the README's code blocks that start with ``prefix``, comments removed."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith(prefix + " ")]


def test_the_model_card_is_a_relative_link_to_the_template_the_registry_fills():
    link = FOLDER / "model_card.md"
    assert link.is_symlink(), "registry/model_card.md must link to the package's template, not copy it"
    assert not os.path.isabs(os.readlink(link)), "an absolute link breaks in every other clone"
    assert link.resolve() == (ROOT / "genre" / "registry" / "model_card.md").resolve()
    assert link.resolve() == Path(str(MODEL_CARD_TEMPLATE)).resolve()


def test_the_folder_holds_only_the_readme_and_links():
    copies = [p.name for p in FOLDER.iterdir() if p != README and not p.is_symlink()]
    assert not copies, f"registry/ holds files of its own, which can drift from the package: {copies}"


def test_the_aliases_named_are_exactly_those_settings_defines():
    text = README.read_text()
    named = set(re.findall(r"(?<![\w.])@([A-Za-z_]\w*)", text))
    named |= {alias for _, alias in re.findall(r"models:/([\w-]+)@(\w+)", text)}
    assert named == ALIASES
    assert {name for name, _ in re.findall(r"models:/([\w-]+)@(\w+)", text)} == {settings.MODEL_NAME}
    assert f"`{settings.MODEL_NAME}`" in text and f"`{settings.EXPERIMENT}`" in text


def test_every_genre_command_shown_parses():
    commands = _commands("genre")
    assert {argv[1] for argv in commands} >= {"register", "promote"}
    for argv in commands:
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"registry/README.md shows a command genre refuses: {shlex.join(argv)}")
    promoted = {argv[2] for argv in commands if argv[1] == "promote"}
    assert {settings.PREVIOUS, settings.CHALLENGER} <= promoted  # the rollback and the challenger's win


def test_every_mlflow_run_shown_is_an_entry_point_whose_command_parses():
    project = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]
    commands = _commands("mlflow run")
    assert commands
    for argv in commands:
        entry = project[argv[argv.index("-e") + 1]]
        given = dict(argv[i + 1].split("=", 1) for i, flag in enumerate(argv) if flag == "-P")
        assert set(given) <= set(entry["parameters"]), f"undeclared parameter in {shlex.join(argv)}"
        values = {name: spec["default"] for name, spec in entry["parameters"].items()} | given
        command = shlex.split(entry["command"].format(**values))
        assert command[:3] == ["python", "-m", "genre"]
        try:
            build_parser().parse_args(command[3:])
        except SystemExit:
            pytest.fail(f"registry/README.md shows an entry point run genre refuses: {shlex.join(argv)}")

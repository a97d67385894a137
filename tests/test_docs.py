"""The shell examples in the READMEs and the commands' help run as written when pasted into
bash: no unquoted `<` or `>` that the shell would take for a redirection, no path of a
development machine."""

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from searchkit.cli import main

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "corpora" / "README.md", REPO / "index" / "README.md"]


def shell_lines(doc: Path) -> list[str]:
    """The lines of the ```sh blocks of a Markdown file, comments cut off."""
    lines, inside = [], False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = line.strip() in ("```sh", "```bash") if not inside else False
            continue
        if inside and line.strip():
            lines.append(line)
    return lines


def redirections(line: str) -> list[str]:
    """Tokens of `line` that bash reads as redirections (outside quotes, before a comment)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="<>|&;()")
    lexer.commenters = "#"
    lexer.whitespace_split = True
    return [t for t in lexer if t and set(t) <= set("<>&|") and set(t) & set("<>")]


@pytest.mark.parametrize("doc", [d for d in DOCS if d.exists()], ids=lambda d: str(d.relative_to(REPO)))
def test_shell_examples_have_no_stray_redirections(doc):
    for line in shell_lines(doc):
        assert not redirections(line), f"{doc.name}: unquoted redirection in: {line}"


@pytest.mark.parametrize("doc", [d for d in DOCS if d.exists()], ids=lambda d: str(d.relative_to(REPO)))
def test_docs_name_no_development_machine_path(doc):
    assert not re.search(r"(?<![\w.])/work/", doc.read_text(encoding="utf-8"))


def test_the_redirection_check_can_fail():
    assert redirections("searchkit search x --where field.year>=2019")
    assert not redirections("searchkit search x --where 'field.year>=2019'  # > comment")


@pytest.mark.parametrize("command", sorted(main.commands))
def test_help_examples_are_quoted(command):
    text = CliRunner().invoke(main, [command, "--help"], terminal_width=200).output
    for example in re.findall(r"--where (\S+)", text):
        assert example[0] in "'\"" or not set(example) & set("<>"), f"{command} --help: --where {example}"


def test_readme_examples_name_the_index_the_usage_block_built():
    """The README's Usage block builds `my-index`: an example after it without `--index`
    would search `./index`, which is not there, and fail as written."""
    readers = ("search", "info", "verify", "optimize", "tui", "map")
    lines = shell_lines(REPO / "README.md")
    assert any("ingest" in line and "--index my-index" in line for line in lines)
    for line in lines:
        words = shlex.split(line, comments=True)
        if words[:1] == ["searchkit"] and words[1:2] and words[1] in readers and "--help" not in words:
            assert "--index" in words, f"README.md: no --index in: {line}"

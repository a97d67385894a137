"""The `searchkit` click group; each command module registers its commands on it."""

from __future__ import annotations

import contextlib

import click


class _UsageLine(click.ClickException):
    """A usage error shown as one line with exit status 2, as Unix tools do (click prints a
    usage block, a hint and the error on three lines)."""

    exit_code = 2

    def __init__(self, error: click.UsageError):
        super().__init__(error.format_message())
        ctx = error.ctx
        self.command = ctx.info_name if ctx is not None and ctx.parent is not None else None

    def show(self, file=None) -> None:
        where = f"{self.command}: " if self.command else ""
        message = " ".join(line.strip() for line in self.message.splitlines() if line.strip())
        click.echo(f"searchkit: error: {where}{message}", err=True, file=file)


@contextlib.contextmanager
def _one_line_usage():
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # bare `searchkit`: the help, as click shows it
    except click.UsageError as exc:
        raise _UsageLine(exc) from None


class _Group(click.Group):
    """Turns every usage error, the group's own and its commands' (bad option values
    included), into `_UsageLine`, here once rather than per option."""

    def make_context(self, *args, **kwargs):
        with _one_line_usage():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_usage():
            return super().invoke(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="searchkit")
def main():
    """searchkit: local semantic search with encoders of its own, FAISS and SQLite."""

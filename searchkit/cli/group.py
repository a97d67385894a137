"""The `searchkit` click group; each command module registers its commands on it."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="searchkit")
def main():
    """searchkit: local semantic search with encoders of its own, FAISS and SQLite."""

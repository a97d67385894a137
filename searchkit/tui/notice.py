"""A message panel for problems that stop searching (no index, empty index, errors)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class Notice(Static):
    message: reactive[str] = reactive("")

    def watch_message(self, message: str) -> None:
        self.update(Text(message))  # error messages hold paths: shown as written, not as markup
        self.display = bool(message)  # takes no room when all is well

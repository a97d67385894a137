"""A message panel for problems that stop searching (no index, empty index, errors)."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static


class Notice(Static):
    message: reactive[str] = reactive("")

    def watch_message(self, message: str) -> None:
        self.update(message)
        self.display = bool(message)  # takes no room when all is well

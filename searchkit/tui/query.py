"""The query box: an `Input` whose down arrow hands focus to the results."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class QueryInput(Input):
    BINDINGS = [
        Binding("enter", "submit", "Search"),
        Binding("down", "leave", "Results"),
    ]

    class Leave(Message):
        """The user arrowed down out of the box (the app moves focus to the results)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(placeholder="Search the index… (Enter to run)", **kwargs)

    def check_consume_key(self, key: str, character: str | None) -> bool:
        # Textual cannot turn the key name "slash" into "/", so it would list the app's
        # "/" binding in the footer while this box is focused; the box types it all the same.
        return key == "slash" or super().check_consume_key(key, character)

    def action_leave(self) -> None:
        self.post_message(self.Leave())

"""The parity panel: the switch, and how the HF `transformers` query vector agrees with ours."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, LoadingIndicator, Static, Switch

from .compare import ParityResult

# A control key, so that it works in the query box too (which types printable keys);
# ctrl+p is Textual's command palette. The app binds it, and `p` outside the query box.
PARITY_KEY = "ctrl+t"
# The label repeats the switch's state in words, for screen readers and text captures.
LABELS = {False: "off: ours only", True: "on: comparing with HF transformers"}
OFF_TEXT = (
    f"Off. Press {PARITY_KEY} (or click the switch) to embed each query with HF transformers too."
)


class ParityPanel(Vertical):
    COMPONENT_CLASSES = {"parity--good", "parity--bad"}

    class Toggled(Message):
        """The user flipped the switch."""

        def __init__(self, value: bool) -> None:
            super().__init__()
            self.value = value

    def compose(self) -> ComposeResult:
        with Horizontal(id="parity-row"):
            yield Switch(id="parity-switch")
            yield Label(LABELS[False], id="parity-label")
        yield LoadingIndicator(id="parity-loading")
        yield Static(OFF_TEXT, id="parity-stats", markup=False)

    def on_mount(self) -> None:
        self.border_title = "parity"
        self.query_one("#parity-loading").display = False

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.query_one("#parity-label", Label).update(LABELS[event.value])
        self.post_message(self.Toggled(event.value))

    def set_switch(self, value: bool) -> None:
        """Move the switch without it reporting back (the app already knows)."""
        with self.prevent(Switch.Changed):
            self.query_one(Switch).value = value
        self.query_one("#parity-label", Label).update(LABELS[value])

    def _set(self, stats: Text | str, loading: bool = False) -> None:
        self.query_one("#parity-loading").display = loading
        text = Text(stats) if isinstance(stats, str) else stats  # errors quote paths: not markup
        self.query_one("#parity-stats", Static).update(text)

    def show_off(self, error: str = "") -> None:
        bad = self.get_component_rich_style("parity--bad")
        self._set(Text(error, style=bad) if error else OFF_TEXT)

    def show_waiting(self, what: str) -> None:
        self._set(what, loading=what.endswith("…"))

    def show(self, result: ParityResult) -> None:
        if result.agrees:
            verdict = ("same top-k, same order", "parity--good")
        else:
            verdict = ("rankings differ", "parity--bad")
        self._set(Text.assemble(
            ("query cosine ", "dim"), (f"{result.cosine:.6f}", "bold"),
            ("  max |Δ| ", "dim"), (f"{result.max_abs:.1e}", "bold"), "\n",
            ("overlap@", "dim"), (f"{result.k} ", "dim"), (f"{result.overlap}/{result.k}", "bold"),
            ("  ", ""), (verdict[0], self.get_component_rich_style(verdict[1])),
        ))

    @property
    def text(self) -> str:
        """The plain text shown (for tests)."""
        return str(self.query_one("#parity-stats", Static).content)

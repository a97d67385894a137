"""The status bar: model, device and dtype, vectors, last query latency, what is going on."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    # Each change repaints the bar (render reads them all).
    model: reactive[str] = reactive("")
    device: reactive[str] = reactive("")
    dtype: reactive[str] = reactive("")
    vectors: reactive[int | None] = reactive(None)
    latency_ms: reactive[float | None] = reactive(None)
    state: reactive[str] = reactive("starting…")

    def render(self) -> Text:
        vectors = "—" if self.vectors is None else f"{self.vectors:,}"
        latency = "—" if self.latency_ms is None else f"{self.latency_ms:.1f} ms"
        return Text.assemble(
            ("model ", "dim"), (self.model or "—", "bold"),
            "  ", f"{self.device} {self.dtype}".strip() or "—",
            ("  vectors ", "dim"), vectors,
            ("  latency ", "dim"), latency,
            "  ", (self.state, "italic"),
        )

    @property
    def text(self) -> str:
        return self.render().plain

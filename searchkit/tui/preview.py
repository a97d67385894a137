"""The preview pane: the selected chunk, highlighted inside its document."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..index import Hit
from .compare import context, display_path


def _where(hit, root: Path | None) -> str:
    """The file of a hit (or of one of its copies), and its record inside the file."""
    return display_path(hit.path, root) + (f" › {hit.document}" if hit.document else "")


def _position(hit: Hit) -> str:
    """The hit's page and lines for the header ('' when neither is known)."""
    out = f"  page {hit.page}" if hit.page is not None else ""
    if hit.line_start is not None:
        same = hit.line_end in (None, hit.line_start)
        out += f"  line {hit.line_start}" if same else f"  lines {hit.line_start}–{hit.line_end}"
    return out


class Preview(VerticalScroll):
    COMPONENT_CLASSES = {"preview--chunk", "preview--context"}

    def compose(self) -> ComposeResult:
        yield Static(id="preview-title")
        yield Static(id="preview-body")

    def on_mount(self) -> None:
        self.border_title = "preview"
        self.clear()

    def clear(self, message: str = "Run a query; the selected hit shows here.") -> None:
        self.hit = None
        self.query_one("#preview-title", Static).update("")
        self.query_one("#preview-body", Static).update(Text(message, style="italic"))

    def show(self, hit: Hit, document: str, root: Path | None) -> None:
        """`document` is the hit's whole document text; `hit.start:hit.end` is the chunk."""
        self.hit = hit
        if document[hit.start : hit.end] != hit.text:
            # The catalog moved on since the search: show the chunk alone.
            document, start, end = hit.text, 0, len(hit.text)
        else:
            start, end = hit.start, hit.end
        before, chunk, after, cut_before, cut_after = context(document, start, end)
        title = Text.assemble((_where(hit, root), "bold"), _position(hit), f"  chars {hit.start}–{hit.end}  chunk {hit.chunk_id}")
        if hit.copies:  # a distinct search folded these repeats of the chunk into it
            title.append("\nsame text: ", style="bold")
            title.append(", ".join(_where(c, root) + _position(c) for c in hit.copies), style="italic")
        self.query_one("#preview-title", Static).update(title)
        ctx = self.get_component_rich_style("preview--context")
        body = Text.assemble(
            ("…" if cut_before else "", ctx),
            (before, ctx),
            (chunk, self.get_component_rich_style("preview--chunk")),
            (after, ctx),
            ("…" if cut_after else "", ctx),
        )
        self.query_one("#preview-body", Static).update(body)
        self.scroll_home(animate=False)

    @property
    def text(self) -> str:
        """The plain text shown (for tests and screen readers)."""
        title = self.query_one("#preview-title", Static).content
        body = self.query_one("#preview-body", Static).content
        return f"{title}\n{body}"

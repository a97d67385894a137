"""The HF top-k panel: what the `transformers` query vector retrieves, beside ours."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable

from .compare import ParityResult, display_path, snippet, snippet_width


class HfResults(DataTable):
    COMPONENT_CLASSES = {"hf--disagree"}
    can_focus = False  # a read-only companion of the results table; keeps Tab simple

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", zebra_stripes=True, **kwargs)
        self._shown: tuple = (None, None)  # (result, root) of the last show(), for resizes

    def on_mount(self) -> None:
        self.border_title = "HF transformers top-k"
        self.display = False

    def show(self, result: ParityResult | None, root: Path | None) -> None:
        """One row per HF hit; rows whose rank differs from ours are marked."""
        self._shown = (result, root)
        self.clear(columns=True)
        self.display = result is not None
        if result is None:
            return
        files = [display_path(h.path, root) for h in result.hf_hits]
        widths = [3, 6, 4, max([4, *map(len, files)])]
        room = snippet_width(self.scrollable_content_region.width, widths, self.cell_padding)
        for label in ("HF#", "score", "ours", "file"):
            self.add_column(label, key=label)
        self.add_column("snippet", key="snippet", width=room)
        marked = self.get_component_rich_style("hf--disagree", partial=True)
        for hit, file in zip(result.hf_hits, files):
            ours = result.our_rank.get(hit.chunk_id)
            if ours == hit.rank:
                ours_cell = Text(str(ours))
            else:
                ours_cell = Text(f"{ours if ours is not None else '—'} ≠", style=marked)
            # Text, not str: a DataTable reads str cells as markup ("[red]alert.txt").
            cells = [str(hit.rank), f"{hit.score:.4f}", ours_cell, Text(file)]
            self.add_row(*cells, Text(snippet(hit.text, room)), key=str(hit.chunk_id))

    def on_resize(self) -> None:
        # Shown while hidden (width 0), or resized: fit the snippet column again.
        if self._shown[0] is not None:
            self.show(*self._shown)

    @property
    def text(self) -> str:
        """The plain text of the rows (for tests)."""
        rows = (self.get_row_at(i) for i in range(self.row_count))
        return "\n".join(" ".join(str(cell) for cell in row) for row in rows)

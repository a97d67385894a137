"""The results table: rank, score, file, snippet, and under parity the HF rank."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from ..index import Hit
from .compare import ParityResult, display_path, snippet, snippet_width


class ResultsTable(DataTable):
    COMPONENT_CLASSES = {"results--disagree", "results--agree"}
    BINDINGS = [Binding("up", "cursor_up", "Up", show=False)]

    class HitHighlighted(Message):
        def __init__(self, hit: Hit | None) -> None:
            super().__init__()
            self.hit = hit

    class Leave(Message):
        """The user arrowed up past the first row (the app moves focus to the query)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.hits: list[Hit] = []
        self._shown: tuple = (None, None)  # (root, parity) of the last show(), for resizes

    def show(self, hits: list[Hit], root: Path | None, parity: ParityResult | None = None) -> None:
        """Fill the table; the cursor stays on its row when only parity changed."""
        keep = self.cursor_row if hits == self.hits else 0
        self.hits, self._shown = list(hits), (root, parity)
        self.clear(columns=True)
        files = [display_path(hit.path, root) for hit in hits]
        # "+2": a distinct search folded two copies of this chunk's text into it (the preview names them).
        copies = [f" +{len(hit.copies)}" if hit.copies else "" for hit in hits]
        widths = [2, 6] + ([5] if parity else []) + [max([4, *(len(f) + len(c) for f, c in zip(files, copies))])]
        room = snippet_width(self.scrollable_content_region.width, widths, self.cell_padding)
        self.add_column("#", key="rank")
        self.add_column("score", key="score")
        if parity is not None:
            self.add_column("HF", key="hf")
        self.add_column("file", key="file")
        self.add_column("snippet", key="snippet", width=room)
        for hit, file, more in zip(hits, files, copies):
            cells: list = [str(hit.rank), f"{hit.score:.4f}"]
            if parity is not None:
                cells.append(self._hf_cell(hit, parity))
            # Text, not str: a DataTable reads str cells as markup ("[red]alert.txt").
            cells += [Text.assemble(file, (more, "dim")), Text(snippet(hit.text, room))]
            self.add_row(*cells, key=str(hit.chunk_id))
        if hits:
            self.move_cursor(row=min(keep, len(hits) - 1))
        self.post_message(self.HitHighlighted(self.hits[self.cursor_row] if hits else None))

    def on_resize(self) -> None:
        if self.hits:
            self.show(self.hits, *self._shown)

    def _hf_cell(self, hit: Hit, parity: ParityResult) -> Text:
        """The hit's rank under the HF query vector; marked where it differs from ours."""
        rank = parity.hf_rank.get(hit.chunk_id)
        if rank == hit.rank:
            agree = self.get_component_rich_style("results--agree", partial=True)
            return Text(str(rank), style=agree)
        # ">k" when the HF vector does not retrieve this chunk at all.
        label = f"{rank} ≠" if rank is not None else f">{len(parity.hf_hits)} ≠"
        return Text(label, style=self.get_component_rich_style("results--disagree", partial=True))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()  # re-posted as HitHighlighted, which says which hit
        if 0 <= event.cursor_row < len(self.hits):
            self.post_message(self.HitHighlighted(self.hits[event.cursor_row]))

    def action_cursor_up(self) -> None:
        if self.cursor_row <= 0:
            self.post_message(self.Leave())
        else:
            super().action_cursor_up()

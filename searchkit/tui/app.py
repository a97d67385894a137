"""`SearchApp`: the Textual front end over an `Index` (see `searchkit tui`).

The UI thread only ever touches widgets and reactive state. Everything slow (opening
the index and loading the encoder, encoding and searching, loading and running the
`transformers` reference) runs in thread workers that post messages back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Footer
from textual.worker import get_current_worker

from .. import parity as parity_lib  # looked up at call time, so tests can patch it
from ..errors import IndexCorrupt, IndexNotFound, SearchkitError
from ..index import Hit, Index, open_index
from .compare import ParityResult, common_root, compare_query
from .hf_results import HfResults
from .messages import (
    IndexFacts,
    IndexFailed,
    IndexReady,
    ParityDone,
    ParityFailed,
    ReferenceFailed,
    ReferenceLoaded,
    SearchDone,
    SearchFailed,
)
from .notice import Notice
from .parity_panel import PARITY_KEY, ParityPanel
from .preview import Preview
from .query import QueryInput
from .results import ResultsTable
from .status import StatusBar


def one_line(exc: BaseException) -> str:
    """An error's message on one line, for the notice, the toasts and the parity panel."""
    return " ".join(str(exc).splitlines()) or type(exc).__name__


class SearchApp(App):
    """Search an index interactively; optionally hold each query to `transformers`.

    >>> SearchApp(index_dir="index/").run()
    >>> SearchApp(index=searchkit.open_index("index/"), k=5)  # tests inject a built index
    """

    CSS_PATH = "search.tcss"
    TITLE = "searchkit"
    # Printable keys fire only when the query box is not focused (it consumes them, so
    # typing "q" or "p" there types them); ctrl+q and PARITY_KEY work from anywhere.
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("q", "quit", "Quit", show=False),
        Binding(PARITY_KEY, "toggle_parity", "Parity"),
        Binding("p", "toggle_parity", "Parity", show=False),
        Binding("slash", "focus_query", "Query"),
        Binding("escape", "focus_results", "Results", show=False),
    ]

    # init=False: the watchers touch widgets, which exist only after compose.
    ready: reactive[bool] = reactive(False, init=False)
    hits: reactive[list[Hit]] = reactive(list, always_update=True, init=False)
    parity: reactive[bool] = reactive(False, init=False)
    parity_result: reactive[ParityResult | None] = reactive(
        None, always_update=True, init=False
    )

    def __init__(
        self,
        index: Index | None = None,
        index_dir: str | Path | None = None,
        *,
        k: int = 10,
        clock: Callable[[], float] = time.perf_counter,
        dtype: str = "auto",
        distinct: bool = False,
    ) -> None:
        """`dtype`: the query encoder's, when the app opens `index_dir` itself ("fastest":
        the one measured fastest here for single queries, dtype_speed.py). `distinct`: one
        hit per text (searchkit/distinct.py), for our list and the parity one alike."""
        super().__init__()
        if index is None and index_dir is None:
            index_dir = "index"
        self.index = index
        self.index_dir = Path(index_dir) if index_dir is not None else index.folder
        self.k = k
        self.dtype = dtype
        self.distinct = distinct
        self.clock = clock  # injectable so snapshot tests show a fixed latency
        self.root: Path | None = None
        self.index_mark: tuple | None = None  # (catalog, generation) that `root` and the vector count are of
        self.seq = 0  # bumped per query; answers to older queries are dropped
        self.query_text = ""
        self.query_vector: np.ndarray | None = None
        self.documents: dict[int, str] = {}
        self.reference: Any = None  # the transformers model, once loaded
        self.reference_loading = False
        self.pending_query = ""  # submitted before the model finished loading
        # Why the index could not be opened, or how it broke while searching: the UI shows
        # it, and `run()` raises it once the user quits, so `searchkit tui` exits non-zero.
        self.failure: SearchkitError | None = None

    def compose(self) -> ComposeResult:
        yield QueryInput(id="query")
        yield Notice(id="notice")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield ResultsTable(id="results")
                yield HfResults(id="hf-results")
            with Vertical(id="side"):
                yield Preview(id="preview")
                yield ParityPanel(id="parity")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#results", ResultsTable).border_title = "results"
        self.query_one(StatusBar).state = "loading model…"
        self.query_one(QueryInput).focus()
        self.load_index()

    # -- opening the index ----------------------------------------------------------------

    @work(thread=True, exclusive=True, group="open")
    def load_index(self) -> None:
        try:
            index = self.index or open_index(self.index_dir, dtype=self.dtype, fastest_for="queries")
            info = index.info()  # raises IndexNotFound for a missing folder
            if info["vectors"] == 0:
                settings = info["settings"]
                model, dtype = str(settings.get("model") or "—"), str(settings.get("dtype") or "")
                hint = f"add files with `searchkit ingest PATH --index {index.folder}`"
                facts = IndexFacts(model, "", dtype, 0, None)
                error = f"{index.folder}: the index is empty; {hint}"
                self.post_message(IndexFailed(error, "empty index", facts))
                return
            encoder = index.encoder  # the slow part: loads the weights
            self.index_mark = None
            vectors, root = self._index_state(index)
            name = Path(encoder.name).name if "/" in encoder.name else encoder.name
            facts = IndexFacts(name, str(encoder.device), encoder.dtype_name, vectors, root)
            self.post_message(IndexReady(index, facts))
            # Queries come one at a time here: trace their graph now, while the user types,
            # rather than during the second query (a first query waits on the lock meanwhile).
            encoder.trace_single_texts()
        except IndexNotFound as exc:
            self.post_message(IndexFailed(one_line(exc), "no index", cause=exc))
        except SearchkitError as exc:  # corrupt index, model missing or mismatched
            self.post_message(IndexFailed(one_line(exc), "cannot open index", cause=exc))

    def _index_state(self, index) -> tuple[int, Path | None] | None:
        """The index's vector count and its files' common folder, or None when the catalog has
        not moved on since they were last read (worker threads). A search follows another
        process's ingest or swapped-in rebuild (Index._follow_swap): what the UI shows must too."""
        catalog = index.catalog
        if self.index_mark is not None and self.index_mark[0] is catalog and self.index_mark[1] == catalog.generation:
            return None
        self.index_mark = (catalog, catalog.generation)
        return index.vectors.count, common_root(list(catalog.files()))

    def on_index_ready(self, message: IndexReady) -> None:
        self.index = message.index
        self._show_facts(message.facts)
        self.root = message.facts.root
        self.ready = True
        self.query_one(StatusBar).state = "ready"
        if self.pending_query:
            self.run_query(self.pending_query)
        elif self.parity:
            self.start_parity()  # switched on while the model was loading

    def on_index_failed(self, message: IndexFailed) -> None:
        self.failure = message.cause or self.failure
        if message.facts:
            self._show_facts(message.facts)
        self.query_one(StatusBar).state = message.state
        self.query_one(Notice).message = message.error
        self.query_one(Preview).clear("Nothing to search.")
        self.notify(message.error, severity="error", timeout=8, markup=False)

    def _show_facts(self, facts: IndexFacts) -> None:
        status = self.query_one(StatusBar)
        status.model, status.device, status.dtype = facts.model, facts.device, facts.dtype
        status.vectors = facts.vectors

    # -- searching ------------------------------------------------------------------------

    @on(QueryInput.Submitted)
    def submit(self, event: QueryInput.Submitted) -> None:
        query = event.value.strip()
        if not query:
            return
        if not self.ready:
            self.pending_query = query
            if self.query_one(Notice).message:
                self.notify(self.query_one(Notice).message, severity="error", markup=False)
            return
        self.run_query(query)

    def run_query(self, query: str) -> None:
        self.pending_query = ""
        self.seq += 1
        self.query_one(StatusBar).state = "searching…"
        self.search(self.seq, query)

    @work(thread=True, exclusive=True, group="search")
    def search(self, seq: int, query: str) -> None:
        index, worker = self.index, get_current_worker()
        try:
            started = self.clock()
            vector = index.encoder.encode_queries([query])
            hits = index.search_vectors(vector, self.k, distinct=self.distinct)[0]
            latency_ms = (self.clock() - started) * 1000
            if worker.is_cancelled:
                return  # a newer query replaced this one
            # Read the documents here, so the UI thread never waits on SQLite.
            documents = {h.chunk_id: index.catalog.document_text(h.chunk_id) for h in hits}
            self.post_message(SearchDone(seq, query, vector[0], hits, documents, latency_ms,
                                         self._index_state(index)))
        except SearchkitError as exc:  # e.g. IndexCorrupt: the catalog cannot be read
            self.post_message(SearchFailed(seq, one_line(exc), exc))

    def on_search_done(self, message: SearchDone) -> None:
        status = self.query_one(StatusBar)
        if message.index_state is not None:  # even from a dropped answer: it is read once
            status.vectors, self.root = message.index_state  # before the hits: their paths go by root
        if message.seq != self.seq:
            return
        self.query_text, self.query_vector = message.query, message.vector
        self.documents = message.documents
        status.latency_ms = message.latency_ms
        status.state = f"{len(message.hits)} hits" if message.hits else "no hits"
        self.query_one(Notice).message = ""
        self.parity_result = None  # it answered the previous query
        self.hits = message.hits
        if self.parity:
            self.start_parity()

    def on_search_failed(self, message: SearchFailed) -> None:
        if isinstance(message.cause, IndexCorrupt):  # the index broke: say so on exit too
            self.failure = message.cause
        if message.seq == self.seq:
            self.query_one(StatusBar).state = "search failed"
            self.query_one(Notice).message = message.error
            self.notify(message.error, severity="error", markup=False)

    def watch_hits(self, hits: list[Hit]) -> None:
        self.query_one(ResultsTable).show(hits, self.root, self.parity_result)
        if not hits:
            self.query_one(Preview).clear("No hits.")

    @on(ResultsTable.HitHighlighted)
    def preview_hit(self, event: ResultsTable.HitHighlighted) -> None:
        if event.hit is not None:
            document = self.documents.get(event.hit.chunk_id, "")
            self.query_one(Preview).show(event.hit, document, self.root)

    # -- parity -----------------------------------------------------------------------------

    def action_toggle_parity(self) -> None:
        self.parity = not self.parity

    @on(ParityPanel.Toggled)
    def parity_toggled(self, event: ParityPanel.Toggled) -> None:
        self.parity = event.value

    def watch_parity(self, on: bool) -> None:
        panel = self.query_one(ParityPanel)
        panel.set_switch(on)
        if on:
            self.start_parity()
        else:
            self.parity_result = None
            panel.show_off()

    def start_parity(self) -> None:
        panel = self.query_one(ParityPanel)
        if not self.ready:
            if self.query_one(Notice).message:  # no index: nothing to compare
                self.parity = False
                panel.show_off("Parity needs an index to search.")
            else:
                panel.show_waiting("On. Waiting for the model to load.")
        elif self.reference is None:
            panel.show_waiting("loading the transformers model…")
            if not self.reference_loading:  # flipping the switch twice must not load it twice
                self.reference_loading = True
                self.load_reference()
        elif self.query_vector is None:
            panel.show_waiting("On. Run a query to compare.")
        else:
            panel.show_waiting("embedding the query with transformers…")
            self.run_parity(self.seq, self.query_text, self.query_vector, self.hits)

    @work(thread=True, exclusive=True, group="reference")
    def load_reference(self) -> None:
        path = self.index.encoder.path
        try:
            self.post_message(ReferenceLoaded(parity_lib.load_reference(path)))
        except SearchkitError as exc:
            self.post_message(ReferenceFailed(one_line(exc)))
        except (OSError, ValueError, KeyError) as exc:  # transformers cannot read this checkpoint
            error = f"transformers could not load {path}: {one_line(exc)}"
            self.post_message(ReferenceFailed(error))

    def on_reference_loaded(self, message: ReferenceLoaded) -> None:
        self.reference_loading = False
        self.reference = message.reference  # cached for the rest of the session
        if self.parity:
            self.start_parity()

    def on_reference_failed(self, message: ReferenceFailed) -> None:
        self.reference_loading = False
        self.parity = False
        self.query_one(ParityPanel).show_off(message.error)
        self.notify(message.error, title="parity", severity="error", timeout=8, markup=False)

    @work(thread=True, exclusive=True, group="parity")
    def run_parity(self, seq: int, query: str, vector: np.ndarray, hits: list[Hit]) -> None:
        index, worker = self.index, get_current_worker()
        try:
            # the same query prompt as ours, so both sides embed the same tokens
            hf = parity_lib.reference_vectors(index.encoder, self.reference, [query], prompt=index.encoder.query_prompt)
            hf_hits = index.search_vectors(hf, self.k, distinct=self.distinct)[0]
            if not worker.is_cancelled:
                result = compare_query(query, vector, hf[0], hits, hf_hits)
                self.post_message(ParityDone(seq, result))
        except SearchkitError as exc:
            self.post_message(ParityFailed(seq, one_line(exc)))

    def on_parity_done(self, message: ParityDone) -> None:
        if message.seq == self.seq and self.parity:
            self.parity_result = message.result

    def on_parity_failed(self, message: ParityFailed) -> None:
        if message.seq == self.seq:
            self.parity = False
            self.query_one(ParityPanel).show_off(message.error)
            self.notify(message.error, title="parity", severity="error", markup=False)

    def watch_parity_result(self, result: ParityResult | None) -> None:
        self.query_one(ResultsTable).show(self.hits, self.root, result)
        self.query_one(HfResults).show(result, self.root)
        if result is not None:
            self.query_one(ParityPanel).show(result)

    # -- focus ------------------------------------------------------------------------------

    def action_focus_query(self) -> None:
        self.query_one(QueryInput).focus()

    def action_focus_results(self) -> None:
        self.query_one(ResultsTable).focus()

    @on(QueryInput.Leave)
    def _query_left(self) -> None:
        self.action_focus_results()

    @on(ResultsTable.Leave)
    def _results_left(self) -> None:
        self.action_focus_query()

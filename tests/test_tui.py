"""The Textual app, driven with the Pilot over a small index of Python doc topics."""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("textual")

from click.testing import CliRunner  # noqa: E402
from index_helpers import fails_with  # noqa: E402
from textual.geometry import Region  # noqa: E402
from textual.worker import WorkerFailed  # noqa: E402

import searchkit  # noqa: E402
from searchkit import parity  # noqa: E402
from searchkit.cli import main  # noqa: E402
from searchkit.errors import IndexCorrupt, IndexNotFound, MissingDependency  # noqa: E402
from searchkit.tui import SearchApp  # noqa: E402
from searchkit.tui.hf_results import HfResults  # noqa: E402
from searchkit.tui.messages import SearchDone  # noqa: E402
from searchkit.tui.notice import Notice  # noqa: E402
from searchkit.tui.parity_panel import PARITY_KEY, ParityPanel  # noqa: E402
from searchkit.tui.preview import Preview  # noqa: E402
from searchkit.tui.results import ResultsTable  # noqa: E402
from searchkit.tui.status import StatusBar  # noqa: E402

TOPICS = ["lambda", "del", "with", "import"]
K = 5
SIZE = (120, 36)


class StepClock:
    """Each call is 12.5 ms after the last, so every query 'takes' 12.5 ms."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.0125
        return self.now


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, minilm) -> Path:
    from pydoc_data.topics import topics

    root = tmp_path_factory.mktemp("tui")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in TOPICS:
        (corpus / f"{name}.txt").write_text(topics[name], encoding="utf-8")
    searchkit.open_index(root / "index", encoder=minilm).ingest([corpus])
    return root / "index"


@pytest.fixture
def make_app(index_dir, minilm):
    def make(**kwargs) -> SearchApp:
        index = searchkit.open_index(index_dir, encoder=minilm)
        return SearchApp(index=index, k=K, clock=StepClock(), **kwargs)

    return make


def drive(app: SearchApp, scenario) -> None:
    """Run `scenario(pilot)` inside the app (the tests are sync; no asyncio plugin needed)."""

    async def main():
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await scenario(pilot)

    asyncio.run(main())


async def settle(pilot) -> None:
    """Wait until no worker runs and the messages they posted are handled."""
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.state.name in ("PENDING", "RUNNING") for w in pilot.app.workers):
            return


async def search(pilot, query: str) -> None:
    await pilot.press(*query, "enter")
    await settle(pilot)


def first_file(app: SearchApp) -> str:
    return str(app.query_one(ResultsTable).get_row_at(0)[2])


def painted(widget) -> str:
    """What `widget` draws on the screen (after any markup was applied), line by line."""
    lines = widget.render_lines(Region(0, 0, widget.outer_size.width, widget.outer_size.height))
    return "\n".join(line.text for line in lines)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("delete a name binding", "del.txt"),
        ("context manager with enter and exit methods", "with.txt"),
    ],
)
def test_query_puts_expected_document_first(make_app, query, expected):
    app = make_app()

    async def scenario(pilot):
        await search(pilot, query)
        assert first_file(app) == expected
        assert app.query_one(ResultsTable).row_count == K
        status = app.query_one(StatusBar).text
        assert "all-MiniLM-L6-v2" in status and "cpu fp32" in status
        assert f"vectors {app.index.vectors.count}" in status
        assert "latency 12.5 ms" in status

    drive(app, scenario)


def test_status_and_paths_follow_a_rebuild_swapped_in(tmp_path, minilm):
    """Another process's `ingest --rebuild` swaps a new index in: searches found its content,
    but the status bar kept the old vector count and the file column went absolute."""
    from pydoc_data.topics import topics

    old, new = tmp_path / "old", tmp_path / "new"
    for folder, names in ((old, TOPICS), (new, ["lambda", "del"])):
        folder.mkdir()
        for name in names:
            (folder / f"{name}.txt").write_text(topics[name], encoding="utf-8")
    (new / "sub").mkdir()
    (new / "sub" / "extra.txt").write_text("A short note on deleting names.", encoding="utf-8")
    searchkit.open_index(tmp_path / "index", encoder=minilm).ingest([old])
    app = SearchApp(index=searchkit.open_index(tmp_path / "index", encoder=minilm), k=K, clock=StepClock())

    async def scenario(pilot):
        await search(pilot, "delete a name binding")
        before = app.index.vectors.count
        assert f"vectors {before:,}" in app.query_one(StatusBar).text and first_file(app) == "del.txt"
        other = searchkit.open_index(tmp_path / "index", encoder=minilm, chunk_tokens=64)  # as another process
        other.ingest([new], rebuild=True)
        after = other.vectors.count
        assert after != before
        await search(pilot, " again")
        assert f"vectors {after:,}" in app.query_one(StatusBar).text
        files = {str(app.query_one(ResultsTable).get_row_at(i)[2]) for i in range(app.query_one(ResultsTable).row_count)}
        assert "sub/extra.txt" in files and files <= {"del.txt", "lambda.txt", "sub/extra.txt"}  # not absolute

    drive(app, scenario)


def test_cursor_moves_preview_to_that_hit(make_app):
    app = make_app()

    async def scenario(pilot):
        await search(pilot, "delete a name binding")
        table, preview = app.query_one(ResultsTable), app.query_one(Preview)
        assert preview.hit == table.hits[0]
        await pilot.press("down")  # from the query box into the table
        assert app.focused is table
        await pilot.press("down")
        await pilot.pause()
        hit = table.hits[1]
        assert table.cursor_row == 1 and preview.hit == hit
        shown = preview.text
        assert Path(hit.path).name in shown and f"chars {hit.start}–{hit.end}" in shown
        assert " ".join(hit.text.split()) in " ".join(shown.split())
        await pilot.press("up", "up")  # up past the first row goes back to the query box
        assert app.focused is app.query_one("#query")

    drive(app, scenario)


def test_parity_toggle_compares_with_transformers(make_app):
    pytest.importorskip("transformers")
    app = make_app()

    async def scenario(pilot):
        await search(pilot, "delete a name binding")
        await pilot.press("down", "p")  # turning it on computes parity for the query shown
        await settle(pilot)
        result = app.parity_result
        assert app.parity and result is not None and result.query == "delete a name binding"
        assert result.cosine >= 0.9999 and result.max_abs < 1e-4
        assert result.k == K and result.overlap == K
        shown = app.query_one(ParityPanel).text
        assert float(re.search(r"cosine ([0-9.]+)", shown).group(1)) >= 0.9999
        assert f"overlap@{K} {K}/{K}" in shown
        table = app.query_one(ResultsTable)
        assert str(table.ordered_columns[2].label) == "HF"
        hf_ranks = [str(table.get_row_at(i)[2]) for i in range(K)]
        assert hf_ranks == [str(i + 1) for i in range(K)]
        assert app.query_one(HfResults).row_count == K and app.query_one(HfResults).display
        # The cached reference answers the next query without loading again.
        reference = app.reference
        await pilot.press("up")
        await search(pilot, " exit")
        assert app.reference is reference and app.parity_result.query.endswith("exit")
        await pilot.click("#parity-switch")  # and the switch turns it off
        await settle(pilot)
        assert not app.parity and app.parity_result is None
        assert not app.query_one(HfResults).display
        assert len(table.columns) == 4

    drive(app, scenario)


def test_disagreements_are_marked(make_app, monkeypatch, minilm):
    # A stand-in "HF" vector from another text, so the two rankings must differ.
    other = minilm.encode(["import a module from a package"])
    monkeypatch.setattr(parity, "reference_vectors", lambda encoder, reference, texts, prompt="": other)
    app = make_app()
    app.reference = object()  # already "loaded": no transformers needed

    async def scenario(pilot):
        await pilot.press("escape", "p")  # on before any query: waits for one
        assert app.parity and "Run a query" in app.query_one(ParityPanel).text
        await pilot.press("slash")
        await search(pilot, "delete a name binding")
        result = app.parity_result
        assert result is not None and result.cosine < 0.9 and not result.agrees
        assert "rankings differ" in app.query_one(ParityPanel).text
        table = app.query_one(ResultsTable)
        hf_cells = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
        assert any("≠" in cell for cell in hf_cells)
        assert "≠" in app.query_one(HfResults).text

    drive(app, scenario)


def test_missing_transformers_is_a_message_and_the_toggle_goes_back_off(make_app, monkeypatch):
    def absent(model_dir):
        raise MissingDependency("parity needs transformers: pip install 'searchkit[parity]'")

    monkeypatch.setattr(parity, "load_reference", absent)
    app = make_app()

    async def scenario(pilot):
        await search(pilot, "delete a name binding")
        await pilot.press("down", "p")
        await settle(pilot)
        assert not app.parity and not app.query_one("#parity-switch").value
        assert "pip install 'searchkit[parity]'" in app.query_one(ParityPanel).text
        assert first_file(app) == "del.txt"  # searching goes on

    drive(app, scenario)


def test_missing_index_folder_opens_and_says_so(tmp_path):
    folder = tmp_path / "no-such-index"
    app = SearchApp(index_dir=folder)

    async def scenario(pilot):
        notice = app.query_one(Notice)
        assert notice.display and "no index here" in notice.message
        assert "no index" in app.query_one(StatusBar).text
        assert "Nothing to search" in app.query_one(Preview).text
        await search(pilot, "anything")  # no crash, nothing to search
        await pilot.press("escape", "p")
        await settle(pilot)
        assert not app.parity and app.query_one(ResultsTable).row_count == 0
        assert app.is_running

    drive(app, scenario)
    assert not folder.exists()  # opening never creates an index


def test_empty_index_says_so(tmp_path, minilm):
    (tmp_path / "nothing").mkdir()
    searchkit.open_index(tmp_path / "index", encoder=minilm).ingest([tmp_path / "nothing"])
    app = SearchApp(index=searchkit.open_index(tmp_path / "index", encoder=minilm))

    async def scenario(pilot):
        assert "empty" in app.query_one(Notice).message
        assert "vectors 0" in app.query_one(StatusBar).text

    drive(app, scenario)


def test_typing_q_and_p_in_the_query_types_them(make_app):
    app = make_app()

    async def scenario(pilot):
        await pilot.press("q", "p")
        assert app.is_running and not app.parity
        assert app.query_one("#query").value == "qp"

    drive(app, scenario)


def test_stale_results_are_dropped(make_app):
    app = make_app()

    async def scenario(pilot):
        await search(pilot, "delete a name binding")
        hits = app.hits
        old = app.hits[::-1]
        app.post_message(SearchDone(app.seq - 1, "older query", app.query_vector, old, {}, 1.0))
        await pilot.pause()
        assert app.hits == hits and app.query_text == "delete a name binding"

    drive(app, scenario)


def test_parity_key_works_from_the_query_box(make_app, monkeypatch, minilm):
    vector = minilm.encode(["delete a name binding"])
    monkeypatch.setattr(parity, "reference_vectors", lambda encoder, reference, texts, prompt="": vector)
    app = make_app()
    app.reference = object()  # already "loaded": no transformers needed

    async def scenario(pilot):
        query = app.query_one("#query")
        assert app.focused is query  # where focus starts
        assert f"Press {PARITY_KEY}" in app.query_one(ParityPanel).text  # the hint names it
        assert PARITY_KEY in app.screen.active_bindings  # and the footer shows it
        await pilot.press(*"del", PARITY_KEY)
        assert app.parity and query.value == "del" and app.focused is query
        await pilot.press("enter")
        await settle(pilot)
        assert app.parity_result is not None and app.parity_result.query == "del"
        await pilot.press(PARITY_KEY)
        assert not app.parity and app.parity_result is None

    drive(app, scenario)


MARKUP_NAMES = ["[red]alert.txt", "[draft] plan.md", "x[/b]y.txt"]  # the last: folder "x["


@pytest.fixture(scope="module")
def markup_index(tmp_path_factory, minilm) -> Path:
    corpus = tmp_path_factory.mktemp("markup") / "corpus"
    for name in MARKUP_NAMES:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(f"[bold]{name}[/bold] the server is [i]down[/]\n", "utf-8")
    searchkit.open_index(corpus.parent / "index", encoder=minilm).ingest([corpus])
    return corpus.parent / "index"


def test_names_and_text_are_shown_as_written_not_as_markup(markup_index, minilm, monkeypatch):
    vector = minilm.encode(["is the server down"])
    monkeypatch.setattr(parity, "reference_vectors", lambda encoder, reference, texts, prompt="": vector)
    app = SearchApp(index=searchkit.open_index(markup_index, encoder=minilm), k=3)
    app.reference = object()

    async def scenario(pilot):
        await search(pilot, "is the server [i]down[/]")
        assert "is the server [i]down[/]" in painted(app.query_one("#query"))
        table, preview = app.query_one(ResultsTable), app.query_one(Preview)
        assert table.row_count == len(MARKUP_NAMES)
        shown = painted(table)
        for name in MARKUP_NAMES:
            assert name in shown
        assert shown.count("[bold]") == len(MARKUP_NAMES)  # chunk text, in the snippets
        for row in range(table.row_count):
            table.move_cursor(row=row)
            await pilot.pause()
            title, body = map(painted, preview.query("#preview-title, #preview-body"))
            assert Path(preview.hit.path).name in title and "[i]down[/]" in body
        await pilot.press("down", "p")
        await settle(pilot)
        shown = painted(app.query_one(HfResults))
        assert all(name in shown for name in MARKUP_NAMES) and "[bold]" in shown

    drive(app, scenario)


def test_a_missing_index_named_like_markup_is_named_as_written(tmp_path):
    app = SearchApp(index_dir=tmp_path / "[b]my index[/b]")

    async def scenario(pilot):
        assert "[b]my index[/b]" in painted(app.query_one(Notice))

    drive(app, scenario)


def test_a_corrupt_catalog_while_searching_is_a_message(make_app, monkeypatch):
    app = make_app()
    error = IndexCorrupt(f"{app.index.folder}/catalog.db: database disk image is malformed")

    def corrupt(vectors, k, **options):
        raise error

    async def scenario(pilot):
        monkeypatch.setattr(app.index, "search_vectors", corrupt)
        await search(pilot, "delete a name binding")
        assert app.is_running and "search failed" in app.query_one(StatusBar).text
        assert str(error) in painted(app.query_one(Notice))
        assert app.failure is error  # `run()` raises it after the user quits
        monkeypatch.undo()
        await search(pilot, " again")  # the app goes on
        assert first_file(app) == "del.txt"

    drive(app, scenario)


def run_tui(index_dir: Path, monkeypatch, check=None, *extra: str):
    """`searchkit tui --index DIR [EXTRA...]` with the app headless; it quits once the workers are done."""
    real_run = SearchApp.run

    async def quit_when_settled(pilot):
        try:
            await settle(pilot)
        except WorkerFailed:  # a bug: the app ends on its own, as it does with no pilot
            return
        if check is not None:
            check(pilot.app)
        await pilot.press("ctrl+q")

    def headless(app):
        return real_run(app, headless=True, size=SIZE, auto_pilot=quit_when_settled)

    monkeypatch.setattr(SearchApp, "run", headless)
    monkeypatch.setattr("searchkit.cli.tui.no_terminal", lambda: "")  # as if run in one
    return CliRunner().invoke(main, ["tui", "--index", str(index_dir), *extra])


def test_tui_exits_0_after_a_normal_session(index_dir, monkeypatch):
    seen = []
    result = run_tui(index_dir, monkeypatch, check=lambda app: seen.append(app.ready))
    assert seen == [True] and result.exit_code == 0, result.output


def test_tui_without_an_index_exits_as_every_command_does(tmp_path, monkeypatch):
    monkeypatch.setattr(SearchApp, "run", lambda app: pytest.fail("the app started"))
    monkeypatch.setattr("searchkit.cli.tui.no_terminal", lambda: "")
    for folder in (tmp_path / "nosuch", tmp_path):
        said = fails_with(CliRunner().invoke(main, ["search", "q", "--index", str(folder)]), "no index here")
        assert fails_with(CliRunner().invoke(main, ["tui", "--index", str(folder)])) == said
    assert not (tmp_path / "nosuch").exists()


def fake_index(folder: Path) -> Path:
    """A folder that passes the CLI's check that an index is there (for a stubbed open_index)."""
    folder.mkdir(exist_ok=True)
    (folder / "catalog.db").touch()
    return folder


def test_tui_exits_1_when_the_index_cannot_be_opened(tmp_path, monkeypatch):
    folder = tmp_path / "index"
    folder.mkdir()  # a damaged catalog: not a SQLite file at all
    (folder / "catalog.db").write_bytes(bytes(range(256)) * 16)
    shown = "not a usable SQLite"
    seen = []

    def check(app):  # the UI shows the error while it runs
        seen.append(app.is_running and shown in app.query_one(Notice).message)

    result = run_tui(folder, monkeypatch, check)
    assert seen == [True]
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()  # and one line says it again after the app ends
    assert line.startswith("searchkit: error: ") and shown in line


def test_tui_exits_non_zero_when_a_worker_hits_a_bug(tmp_path, monkeypatch):
    def broken(folder, **options):
        raise RuntimeError("a bug in opening")

    monkeypatch.setattr("searchkit.tui.app.open_index", broken)
    result = run_tui(fake_index(tmp_path / "index"), monkeypatch)
    assert result.exit_code == 1
    assert "a bug in opening" in result.stderr  # Textual printed the traceback


def test_tui_dtype_is_the_query_encoders(tmp_path, monkeypatch):
    """--dtype fastest asks for the dtype that embeds single queries fastest (dtype_speed.py)."""
    asked = []

    def record(folder, **options):
        asked.append(options)
        raise IndexNotFound(f"{folder}: no index here")

    monkeypatch.setattr("searchkit.tui.app.open_index", record)
    assert run_tui(fake_index(tmp_path / "index"), monkeypatch, None, "--dtype", "fastest").exit_code == 1
    assert asked == [{"dtype": "fastest", "fastest_for": "queries"}]


def test_tui_refuses_a_bad_dtype_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(SearchApp, "run", lambda app: pytest.fail("the app started"))
    monkeypatch.setattr("searchkit.cli.tui.no_terminal", lambda: "")
    result = CliRunner().invoke(main, ["tui", "--index", str(fake_index(tmp_path)), "--dtype", "fp64"])
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("searchkit: error: ") and "fp64" in line and "dtype" in line


def test_tui_refuses_without_a_terminal(index_dir, monkeypatch):
    """Textual spins forever on a stdin that is no terminal: one line and exit 1 instead,
    before the encoder or the index is loaded."""
    monkeypatch.setattr(SearchApp, "run", lambda app: pytest.fail("the app started"))
    monkeypatch.setattr("searchkit.encoder.pick_dtype", lambda *a: pytest.fail("loaded the encoder's dtype"))
    err = fails_with(CliRunner().invoke(main, ["tui", "--index", str(index_dir)]),
                     "searchkit tui needs a terminal (stdin, stdout, stderr are not a tty)", "searchkit search")
    assert len(err) < 120
    # The real thing, `< /dev/null` and output to pipes, from a script: it ends at once.
    done = subprocess.run([sys.executable, "-m", "searchkit", "tui", "--index", str(index_dir)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("searchkit: error: searchkit tui needs a terminal (stdin") and "\x1b" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_snapshot_after_query(make_app, snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await search(pilot, "delete a name binding")
        await pilot.press("down")  # focus the table: no blinking cursor in the picture

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize(
    "paths, root",
    [
        (["/c/a/x.txt", "/c/b/y.txt"], "/c"),
        (["/c/a/x.txt"], "/c/a"),  # one file: its folder, so the name still shows
        ([], None),
    ],
)
def test_common_root(paths, root):
    from searchkit.tui.compare import common_root, display_path

    found = common_root(paths)
    assert (str(found) if found else None) == root
    if paths:
        assert display_path(paths[0], found) == paths[0][len(root) + 1 :]


def test_context_keeps_the_chunk_and_cuts_at_spaces():
    from searchkit.tui.compare import context

    document = " ".join(f"word{i}" for i in range(200))
    start = document.index("word100")
    end = start + len("word100 word101")
    before, chunk, after, cut_before, cut_after = context(document, start, end, chars=40)
    assert chunk == document[start:end] and cut_before and cut_after
    assert before.startswith("word") and after.endswith(tuple("0123456789"))
    assert 0 < len(before) <= 40 and 0 < len(after) <= 40


@pytest.fixture(scope="module")
def copied_index(tmp_path_factory, minilm) -> Path:
    """The del topic twice (del.txt and a backup of it), and the with topic."""
    from pydoc_data.topics import topics

    root = tmp_path_factory.mktemp("tui-copies")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, topic in (("del.txt", "del"), ("del.bak.txt", "del"), ("with.txt", "with")):
        (corpus / name).write_text(topics[topic], encoding="utf-8")
    searchkit.open_index(root / "index", encoder=minilm).ingest([corpus])
    return root / "index"


@pytest.mark.parametrize("distinct", [False, True])
def test_distinct_lists_copies_in_the_preview(copied_index, minilm, distinct):
    app = SearchApp(index=searchkit.open_index(copied_index, encoder=minilm), k=K, clock=StepClock(),
                    distinct=distinct)

    async def scenario(pilot):
        await search(pilot, "delete a name binding")
        hits = app.query_one(ResultsTable).hits
        texts = [h.text for h in hits]
        shown = app.query_one(Preview).text
        if distinct:
            assert len(set(texts)) == len(texts) == K
            copy = {"del.txt": "del.bak.txt", "del.bak.txt": "del.txt"}[Path(hits[0].path).name]
            assert [Path(c.path).name for c in hits[0].copies] == [copy]
            assert first_file(app) == Path(hits[0].path).name + " +1"
            assert "same text:" in shown and copy in shown.split("same text:")[1]
        else:
            assert len(set(texts)) < len(texts)  # the copies take ranks of their own
            assert "same text:" not in shown

    drive(app, scenario)

"""`searchkit map`: a PNG of the index's vectors in 2-D, coloured by folder or by --where."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from index_helpers import fails_with, invoke

import searchkit
from searchkit.cli import main
from searchkit.corpus_map import MAX_GROUPS, _folder_groups, _keep_largest, _project

FOLDERS = {"statements": ["del", "with", "if"], "types": ["lists", "dict", "numbers"], "misc": ["lambda"]}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, minilm):
    from pydoc_data.topics import topics

    corpus = tmp_path_factory.mktemp("corpus")
    for folder, names in FOLDERS.items():
        (corpus / folder / "deeper").mkdir(parents=True)
        for n, name in enumerate(names):
            where = corpus / folder / ("deeper" if n == 2 else "") / f"{name}.txt"
            where.write_text(f"{name}\n\n{topics[name]}", encoding="utf-8")
    (corpus / "README.txt").write_text("A few Python help topics, by folder.\n", encoding="utf-8")
    folder = tmp_path_factory.mktemp("idx") / "index"
    searchkit.open_index(folder, encoder=minilm, chunk_tokens=64).ingest([corpus])
    return folder


def chunk_counts(index_dir) -> dict[str, int]:
    """Chunks per file name, read through the library."""
    index = searchkit.open_index(index_dir)
    out: dict[str, int] = {}
    for path in index.catalog.chunk_paths().values():
        out[Path(path).name] = out.get(Path(path).name, 0) + 1
    return out


def pixels(png: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(str(png))[..., :3]


def has_colour(image: np.ndarray, rgb, tol: float = 0.03) -> bool:
    return bool((np.abs(image - np.array(rgb)) < tol).all(axis=-1).any())


def test_map_png_coloured_by_folder(index_dir, tmp_path):
    import matplotlib.pyplot as plt

    out = tmp_path / "map.png"
    result = invoke("map", "--index", index_dir, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    counts = chunk_counts(index_dir)
    assert summary["points"] == summary["chunks"] == sum(counts.values()) and not summary["sampled"]
    groups = {g["name"]: g for g in summary["groups"]}
    assert set(groups) == {"statements", "types", "misc", "README.txt"}
    for folder, names in FOLDERS.items():
        assert groups[folder]["count"] == sum(counts[f"{n}.txt"] for n in names)
        assert groups[folder]["label"] in {f"{n}.txt" for n in names}

    image = pixels(out)
    assert image.shape == (750, 1000, 3)
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 50  # points, text, anti-aliasing: not a blank canvas
    assert (image.min(axis=-1) < 0.9).mean() > 0.01  # not all white background
    chroma = image.max(axis=-1) - image.min(axis=-1)
    assert (chroma > 0.2).sum() > 1000  # coloured points, not only black text and grey axes
    for g in range(len(groups)):  # each group's labelled point is drawn in its palette colour, opaque
        assert has_colour(image, plt.get_cmap("tab10").colors[g]), g


def test_map_coloured_by_where(index_dir, tmp_path):
    out = tmp_path / "where.png"
    result = invoke("map", "--index", index_dir, "--out", out, "--where", "path:statements/*", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    counts = chunk_counts(index_dir)
    groups = {g["name"]: g["count"] for g in summary["groups"]}
    matching = sum(counts[f"{n}.txt"] for n in FOLDERS["statements"])
    assert summary["color_by"] == "where"
    assert groups == {"matches path:statements/*": matching, "does not match": sum(counts.values()) - matching}
    import matplotlib.pyplot as plt

    assert has_colour(pixels(out), plt.get_cmap("tab10").colors[0])  # the matches' colour (the rest grey)


def test_map_folder_colours_with_where_draws_only_matches(index_dir, tmp_path):
    result = invoke("map", "--index", index_dir, "--out", tmp_path / "m.png", "--color-by", "folder",
                    "--where", "path:types/*", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    counts = chunk_counts(index_dir)
    assert summary["points"] == sum(counts[f"{n}.txt"] for n in FOLDERS["types"])
    assert [g["name"] for g in summary["groups"]] == ["types"]


def test_map_samples_past_max_points(index_dir, tmp_path):
    runner = CliRunner()
    args = ["map", "--index", str(index_dir), "--out", str(tmp_path / "s.png"), "--max-points", "10", "--json"]
    first, second = runner.invoke(main, args), runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["points"] == 10 and summary["sampled"] and summary["chunks"] > 10
    assert "sample of 10 of" in first.stderr
    assert json.loads(second.stdout)["groups"] == summary["groups"]  # seeded: the same sample


def test_map_human_output(index_dir, tmp_path):
    result = invoke("map", "--index", index_dir, "--out", tmp_path / "h.png")
    assert result.exit_code == 0, result.output
    assert "chunks drawn by PCA" in result.stdout and "statements" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["--out", "{tmp}/no/such/folder/m.png"], "does not exist"),
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/m.xyz"], "expected a .png file name"),
    (["--out", "{tmp}/m.png", "--color-by", "where"], "needs a --where condition"),
    (["--out", "{tmp}/m.png", "--where", "path:nowhere/*", "--color-by", "folder"], "no chunk matches path:nowhere/*"),
    (["--out", "{tmp}/m.png", "--where", "colour=red"], "--where 'colour=red'"),
])
def test_map_errors_are_one_line(index_dir, tmp_path, args, message):
    fails_with(invoke("map", "--index", index_dir, *[a.format(tmp=tmp_path) for a in args]), message)


def test_a_map_of_identical_vectors_has_no_variance_to_share(tmp_path, minilm):
    """All vectors the same: scikit-learn warned of a division by zero and the axes read
    "nan% of variance"."""
    import warnings

    xy, axes = _project(np.ones((5, 8), np.float32), "pca", 0)
    assert not xy.any() and axes == ["PC 1 (0% of variance: all vectors are the same)", "PC 2 (0% of variance)"]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in "abc":
        (corpus / f"{name}.txt").write_text("The same words in every file.\n", encoding="utf-8")
    searchkit.open_index(tmp_path / "index", encoder=minilm).ingest([corpus])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning fails the command
        result = invoke("map", "--index", tmp_path / "index", "--out", tmp_path / "same.png", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["points"] == 3 and result.stderr == ""


def test_map_without_index(tmp_path):
    fails_with(invoke("map", "--index", tmp_path / "none", "--out", tmp_path / "m.png"), "no index here")


@pytest.mark.skipif(importlib.util.find_spec("umap") is not None, reason="umap-learn is installed")
def test_umap_missing_is_one_line(index_dir, tmp_path):
    fails_with(invoke("map", "--index", index_dir, "--out", tmp_path / "u.png", "--method", "umap"),
               "pip install umap-learn")


def test_groups_are_top_level_entries_and_capped():
    paths = ["/c/a/x.txt", "/c/a/b/y.txt", "/c/z.txt"]
    assert _folder_groups(paths, "/c") == ["a", "a", "z.txt"]
    names = [f"f{i}" for i in range(MAX_GROUPS + 3) for _ in range(i + 1)]  # f0 once, f1 twice, ...
    kept, other = _keep_largest(names)
    assert other == "other (3 more)" and len(set(kept)) == MAX_GROUPS + 1
    assert kept.count(other) == 1 + 2 + 3  # the three smallest groups
    assert _keep_largest(names[:10]) == (names[:10], None)


def test_a_map_replaces_an_earlier_picture_only_once_it_is_whole(index_dir, tmp_path, monkeypatch):
    """Writing goes through a temporary file renamed at the end: a failure half-way (a full
    disk, here) leaves the earlier picture as it was and no partial file beside it."""
    import os

    from matplotlib.figure import Figure

    out = tmp_path / "m.png"
    out.write_bytes(b"an earlier picture")
    real_savefig = Figure.savefig

    def disk_fills_up(self, fh, **kwargs):
        fh.write(b"half a png")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_fills_up)
    fails_with(invoke("map", "--index", index_dir, "--out", out), f"map {out}: cannot write (No space left on device)")
    assert out.read_bytes() == b"an earlier picture" and os.listdir(tmp_path) == ["m.png"]

    monkeypatch.setattr(Figure, "savefig", real_savefig)
    result = invoke("map", "--index", index_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.listdir(tmp_path) == ["m.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask

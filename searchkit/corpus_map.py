"""A picture of an index: every chunk's stored vector drawn in 2-D (`searchkit map`).

The vectors are the index's own (no re-embedding), projected by PCA (scikit-learn) or by
UMAP when `umap-learn` is installed, and coloured by the top-level folder they come from
(below the folder all indexed files share; a file lying directly in it is a group of its own) or by whether they match `--where`
conditions (searchkit.filters). Each colour group gets one label: the file name of the
point nearest the group's centre, so a reader can tell which cloud is which.

    >>> summary = draw_map(searchkit.open_index("index/"), "map.png")
    >>> summary.points, [g.name for g in summary.groups]
    (812, ['library', 'reference', 'tutorial'])
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import BadInput, MissingDependency, bad_value
from .filters import compile_where
from .images import check_image_path, save_figure

if TYPE_CHECKING:
    from .index import Index

__all__ = ["COLOR_BY", "MAX_GROUPS", "MAX_POINTS", "METHODS", "CorpusMap", "MapGroup", "draw_map"]

METHODS = ("pca", "umap")
COLOR_BY = ("folder", "where")
# Past this many chunks a seeded random sample is drawn: more points only blacken the
# picture, and the projection's cost grows with them (UMAP's much more than PCA's).
MAX_POINTS = 50_000
# Groups with a colour of their own (matplotlib's tab10 less its grey: nine colours told apart at
# a glance; a legend of hundreds is unreadable); past that the smaller groups share a grey "other".
MAX_GROUPS = 9
BACKGROUND = "#c4c4c4"  # "other" and "does not match": drawn first, underneath, unlabelled


@dataclass(frozen=True)
class MapGroup:
    """One colour of the map: its name, its points, and the file labelled for it."""

    name: str
    count: int
    label: str  # file name of the point nearest the group's centre


@dataclass(frozen=True)
class CorpusMap:
    """What `draw_map` drew (for `--json`)."""

    index: str
    out: str
    method: str
    color_by: str
    points: int  # drawn
    chunks: int  # eligible (the index's, or those matching `where` when colouring by folder)
    sampled: bool  # points < chunks: a seeded sample
    root: str  # the folder every indexed file lies under; folders are named relative to it
    groups: list[MapGroup]

    def to_dict(self) -> dict:
        return asdict(self)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise bad_value("method", method, f"expected one of {', '.join(METHODS)}")
    if method == "umap" and importlib.util.find_spec("umap") is None:
        raise MissingDependency("--method umap needs umap-learn: pip install umap-learn (or use --method pca)")


def _project(x: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, list[str]]:
    """(n, 2) coordinates and the two axis names."""
    if method == "umap":
        if len(x) < 4:
            raise bad_value("method", method, f"UMAP needs at least 4 points, the map has {len(x)}")
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), metric="cosine", random_state=seed)
        return np.asarray(reducer.fit_transform(x)), ["UMAP 1", "UMAP 2"]
    if len(x) < 2:
        return np.zeros((len(x), 2)), ["PC 1", "PC 2"]
    x = x.astype(np.float64)
    if not np.any(x - x[0]):  # every vector the same: no variance to share out (sklearn divides 0 by 0)
        return np.zeros((len(x), 2)), ["PC 1 (0% of variance: all vectors are the same)", "PC 2 (0% of variance)"]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed)
    xy = pca.fit_transform(x)
    names = [f"PC {i + 1} ({share:.1%} of variance)" for i, share in enumerate(pca.explained_variance_ratio_)]
    return xy, names


def _folder_groups(paths: list[str], root: str) -> list[str]:
    """Each path's first component below `root`: its top-level folder, or the file itself
    when it lies directly in `root` (so a flat folder is coloured file by file).

    >>> _folder_groups(["/c/docs/a/x.md", "/c/docs/b.md", "/c/src/y.py"], "/c")
    ['docs', 'docs', 'src']
    """
    return [Path(os.path.relpath(path, root)).parts[0] if root else path for path in paths]


def _root(paths) -> str:
    folders = {os.path.dirname(p) for p in paths}
    try:
        return os.path.commonpath(sorted(folders)) if folders else ""
    except ValueError:  # paths on different drives (Windows)
        return ""


def _keep_largest(names: list[str]) -> tuple[list[str], str | None]:
    """Names outside the MAX_GROUPS largest groups become "other (N more)"; also returns
    that name (None when every group keeps its own).

    >>> _keep_largest(["a"] * 3 + ["b"] * 2 + [f"c{i}" for i in range(MAX_GROUPS)])[1]
    'other (2 more)'
    """
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    if len(counts) <= MAX_GROUPS:
        return names, None
    keep = set(sorted(counts, key=lambda n: (-counts[n], n))[:MAX_GROUPS])
    other = f"other ({len(counts) - len(keep)} more)"
    return [n if n in keep else other for n in names], other


def draw_map(index: Index, out: str | Path, *, color_by: str | None = None, where=None, method: str = "pca",
             max_points: int = MAX_POINTS, seed: int = 0) -> CorpusMap:
    """Draw every chunk of `index` in 2-D to the picture `out` (PNG, or another format
    matplotlib writes, by suffix) and say what was drawn.

    `color_by`: "folder" (the default without `where`) colours by top-level folder and then
    draws only the chunks matching `where`, if given; "where" (the default with `where`)
    colours matching chunks against the rest. `method`: "pca" or "umap" (needs umap-learn).
    More than `max_points` chunks: a random sample of that many, fixed by `seed`."""
    color_by = color_by or ("where" if where else "folder")
    if color_by not in COLOR_BY:
        raise bad_value("color_by", color_by, f"expected one of {', '.join(COLOR_BY)}")
    if color_by == "where" and not where:
        raise bad_value("color_by", color_by, "needs a --where condition to colour by")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise bad_value("max_points", max_points, "must be a positive integer")
    _check_method(method)
    out = check_image_path(out, "map")
    flt = compile_where(where)

    paths = index.catalog.chunk_paths()
    vectors = index.vectors
    ids = np.sort(vectors.ids())
    ids = ids[np.isin(ids, np.fromiter(paths, np.int64, len(paths)))]  # a chunk removed meanwhile: left out
    root = _root(set(paths.values()))
    matched = None
    if flt:
        allowed = np.array(index.catalog.chunk_ids_where((flt.sql, flt.params)), np.int64)
        if color_by == "folder":
            ids = ids[np.isin(ids, allowed)]
            if not len(ids):
                raise BadInput(f"{index.folder}: no chunk matches {' and '.join(c.text for c in flt.conditions)}: "
                               "nothing to map")
    if not len(ids):
        raise BadInput(f"{index.folder}: the index is empty: nothing to map")
    eligible = len(ids)
    if eligible > max_points:
        rng = np.random.default_rng(seed)
        ids = np.sort(rng.choice(ids, size=max_points, replace=False))
    if flt and color_by == "where":
        matched = np.isin(ids, allowed)

    xy, axes = _project(vectors.reconstruct(ids), method, seed)
    point_paths = [paths[int(i)] for i in ids]
    if matched is not None:
        text = " and ".join(c.text for c in flt.conditions)
        background = "does not match"
        names = [f"matches {text}" if m else background for m in matched]
    else:
        names, background = _keep_largest(_folder_groups(point_paths, root))

    groups = _groups(names, xy, point_paths)
    title = (f"{index.folder.name or index.folder}: {len(ids):,} chunks from "
             f"{len(set(point_paths)):,} files, {method.upper()}, coloured by {color_by}")
    if len(ids) < eligible:
        title += f"\na seeded random sample of {len(ids):,} of {eligible:,} chunks"
    _draw(out, xy, names, groups, axes, title, background)
    return CorpusMap(str(index.folder), str(out), method, color_by, len(ids), eligible, len(ids) < eligible, root,
                     groups)


def _groups(names: list[str], xy: np.ndarray, paths: list[str]) -> list[MapGroup]:
    """The groups, largest first, each labelled by the file of its most central point."""
    members: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        members.setdefault(name, []).append(i)
    out = []
    for name, rows in sorted(members.items(), key=lambda item: (-len(item[1]), item[0])):
        pts = xy[rows]
        nearest = rows[int(np.argmin(((pts - pts.mean(axis=0)) ** 2).sum(axis=1)))]
        out.append(MapGroup(name, len(rows), Path(paths[nearest]).name))
    return out


def _draw(out: Path, xy: np.ndarray, names: list[str], groups: list[MapGroup], axes: list[str], title: str,
          background: str | None) -> None:
    """The scatter plot: the background group (if any) first in grey, then the others,
    largest first so the smaller clouds stay visible on top, each with its label."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    n = len(xy)
    size = float(np.clip(20000 / n, 1.5, 30))
    alpha = 0.8 if n < 2000 else 0.4
    palette = iter(c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7)  # 7: grey, the background's
    fig, ax = plt.subplots(figsize=(10, 7.5))
    names_arr = np.array(names, dtype=object)
    for group in sorted(groups, key=lambda g: g.name != background):  # stable: else largest first
        colour = BACKGROUND if group.name == background else next(palette)
        rows = names_arr == group.name
        ax.scatter(xy[rows, 0], xy[rows, 1], s=size, alpha=alpha, color=colour, linewidths=0,
                   label=f"{group.name} ({group.count:,})")
        if group.name == background:
            continue
        centre = np.argmin(((xy[rows] - xy[rows].mean(axis=0)) ** 2).sum(axis=1))
        x, y = xy[rows][centre]
        ax.annotate(group.label, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "alpha": 0.85})
        ax.scatter([x], [y], s=40, color=colour, edgecolors="black", linewidths=0.8, zorder=3)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title, fontsize=10)
    legend = ax.legend(fontsize=8, loc="best", markerscale=max(1.0, 6 / size ** 0.5), framealpha=0.85)
    for handle in legend.legend_handles:
        handle.set_alpha(1.0)
    fig.tight_layout()
    try:
        save_figure(fig, out, "map", dpi=100)
    finally:
        plt.close(fig)

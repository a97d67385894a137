"""One big text file: peak memory, speed, first progress and first commit, a resume after
kill -9, and an edit at the end (issue 30).

The text is SciFact's abstracts, a title line and a paragraph each, concatenated (and
repeated with a copy number in front of every paragraph past the corpus's ~7.5 MB, so no
two paragraphs of a file are the same). Every ingest runs in a fresh process under
`/usr/bin/time -v` for its peak RSS. The peer is the same text split into a folder of
small files (about 10 kB each) ingested the same way: chunks per second and peak RSS of
the one file are given against it.

    python bench/large_file.py --sizes 2,10,50 --model small --record
    python bench/large_file.py --sizes 2 --model all-MiniLM-L6-v2 --no-resume --record

`--model small` is a BERT cut out of all-MiniLM-L6-v2 (one layer, 32 wide; the same
tokenizer, so the same chunks; tests/tiny_models.py): the pipeline's own memory and speed
without the model's. Each size's run with MiniLM itself costs about a minute a megabyte
on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCIFACT, record  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}

# Ingest in a child, reporting (seconds, bytes, chunks) at each progress call on stdout,
# and the summary as a last JSON line.
CHILD = r"""
import json, sys, time
import searchkit
started = time.time()
index = searchkit.open_index(sys.argv[2], model=sys.argv[3], device="cpu", chunk_tokens=int(sys.argv[4]) or None)
def progress(done, total, chunks):
    print(json.dumps({"t": time.time() - started, "bytes": done, "chunks": chunks}), flush=True)
summary = index.ingest([sys.argv[1]], progress=progress)
print(json.dumps({"summary": summary.to_dict(), "t": time.time() - started}), flush=True)
"""


def paragraphs() -> list[str]:
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        return [f"{r['title']}\n{r['text']}" for r in map(json.loads, fh)]


def text_of(size: int) -> str:
    """Just under `size` bytes of abstracts, no paragraph repeated."""
    paras, out, n, copy = paragraphs(), [], 0, 0
    while True:
        for p in paras:
            p = p if copy == 0 else f"(Copy {copy}.) {p}"
            n += len(p.encode("utf-8")) + 2
            if n > size:  # at most `size`: 50 MB is the largest file an ingest takes
                return "\n\n".join(out) + "\n"
            out.append(p)
        copy += 1


class Run:
    """One ingest in a child process: its progress lines, summary, peak RSS and wall time."""

    def __init__(self, path: Path, index: Path, model: str, chunk_tokens: int):
        self.index = index
        self.started = time.time()
        # Output to files: a pipe nobody reads while we poll would fill and stop the child.
        self.out, self.err = (open(index.with_name(f"{index.name}.{n}"), "w+") for n in ("out", "err"))
        self.proc = subprocess.Popen(
            ["/usr/bin/time", "-v", sys.executable, "-c", CHILD, str(path), str(index), model, str(chunk_tokens)],
            env=ENV, stdout=self.out, stderr=self.err, text=True, start_new_session=True)
        self.first_commit: float | None = None

    def staged(self) -> int:
        try:
            db = sqlite3.connect(f"file:{self.index / 'catalog.db'}?mode=ro", uri=True, timeout=5)
            try:
                return db.execute("SELECT count(*) FROM staged_chunks").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error:
            return 0

    def watch(self, until_staged: int | None = None) -> None:
        """Wait for the end (or, with `until_staged`, until that many chunks are staged, then
        kill -9), noting when the first chunks were durably staged."""
        while self.proc.poll() is None:
            n = self.staged()
            if n and self.first_commit is None:
                self.first_commit = time.time() - self.started
            if until_staged is not None and n >= until_staged:
                os.killpg(self.proc.pid, signal.SIGKILL)
                break
            time.sleep(0.1)
        self.proc.wait()
        self.out.seek(0)
        self.err.seek(0)
        out, err = self.out.read(), self.err.read()
        self.wall = time.time() - self.started
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        self.progress = [x for x in lines if "chunks" in x]
        done = [x for x in lines if "summary" in x]
        self.summary = done[0]["summary"] if done else None
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
        self.peak_mb = int(rss.group(1)) / 1024 if rss else float("nan")
        if until_staged is None and self.summary is None:
            raise SystemExit(f"ingest failed:\n{err[-3000:]}")

    def first_progress(self) -> float | None:
        moving = [x["t"] for x in self.progress if x["chunks"] > 0]
        return moving[0] if moving else None


def verify(index: Path) -> bool:
    out = subprocess.run([sys.executable, "-m", "searchkit", "verify", "--index", str(index), "--json"],
                         env=ENV, capture_output=True, text=True)
    return out.returncode == 0 and json.loads(out.stdout)["ok"]


def small_model(work: Path) -> str:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import make_small_bert

    return str(make_small_bert(work / "small-bert"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2,10,50", help="file sizes in MB (2^20 bytes), comma-separated")
    ap.add_argument("--model", default="small", help="'small' (a 1-layer BERT cut from MiniLM) or a model name/folder")
    ap.add_argument("--chunk-tokens", type=int, default=0, help="0: the model's default")
    ap.add_argument("--no-resume", action="store_true", help="skip the kill -9 / resume and the edit runs")
    ap.add_argument("--no-folder", action="store_true", help="skip the folder-of-small-files peer")
    ap.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="large-file-"))
    model = small_model(work) if args.model == "small" else args.model
    rows, notes = [], []
    for size in sizes:
        folder = work / f"one-{size:g}"
        folder.mkdir()
        text = text_of(int(size * 2**20))
        big = folder / "abstracts.txt"
        big.write_text(text, encoding="utf-8")
        run = Run(big, work / f"idx-{size:g}", model, args.chunk_tokens)
        run.watch()
        s = run.summary
        cps = s["chunks_added"] / s["seconds"]
        row = {"size": size, "bytes": big.stat().st_size, "chunks": s["chunks_added"], "seconds": s["seconds"],
               "cps": cps, "peak": run.peak_mb, "first_progress": run.first_progress(),
               "first_commit": run.first_commit, "verify": verify(run.index)}
        if not args.no_folder:
            small = work / f"many-{size:g}"
            small.mkdir()
            parts, buf, n = [], [], 0
            for para in text.split("\n\n"):
                buf.append(para)
                n += len(para)
                if n >= 10_000:
                    parts.append("\n\n".join(buf))
                    buf, n = [], 0
            parts.append("\n\n".join(buf))
            for i, part in enumerate(parts):
                (small / f"part-{i:05d}.txt").write_text(part, encoding="utf-8")
            peer = Run(small, work / f"idx-many-{size:g}", model, args.chunk_tokens)
            peer.watch()
            row.update(peer_files=len(parts), peer_cps=peer.summary["chunks_added"] / peer.summary["seconds"],
                       peer_peak=peer.peak_mb)
        if not args.no_resume:
            # kill -9 at about half the file's chunks, then run again
            half = work / f"idx-resume-{size:g}"
            killed = Run(big, half, model, args.chunk_tokens)
            killed.watch(until_staged=s["chunks_added"] // 2)
            staged = killed.staged()
            again = Run(big, half, model, args.chunk_tokens)
            again.watch()
            a = again.summary
            row.update(staged_at_kill=staged, reembedded=a["chunks_embedded"], reused=a["chunks_reused"],
                       resume_verify=verify(half), resume_seconds=a["seconds"])
            # append one paragraph to the first index's file, then run again
            with open(big, "a", encoding="utf-8") as fh:
                fh.write("\nA paragraph added at the end, about the tides of the Bay of Fundy and the moon.\n")
            edit = Run(big, run.index, model, args.chunk_tokens)
            edit.watch()
            row.update(edit_embedded=edit.summary["chunks_embedded"], edit_chunks=edit.summary["chunks_added"],
                       edit_seconds=edit.summary["seconds"], edit_verify=verify(run.index))
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = [f"model: {args.model if args.model != 'small' else 'small BERT cut from all-MiniLM-L6-v2 (1 layer, 32 wide)'}"
             f", chunk tokens: {args.chunk_tokens or 'model default'}; text: SciFact abstracts concatenated", "",
             "| file | chunks | s | chunks/s | ÷ folder of ~10 kB files | peak RSS | ÷ folder's peak | first progress | "
             "first commit | verify |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ratio = f"{r['cps'] / r['peer_cps']:.2f} ({r['peer_files']} files, {r['peer_cps']:.0f}/s)" if "peer_cps" in r else "-"
        peak_ratio = f"{r['peak'] / r['peer_peak']:.2f}" if "peer_peak" in r else "-"
        fp = f"{r['first_progress']:.1f} s" if r["first_progress"] is not None else "-"
        fc = f"{r['first_commit']:.1f} s" if r["first_commit"] is not None else "-"
        lines.append(f"| {r['bytes']:,} B | {r['chunks']:,} | {r['seconds']:.1f} | {r['cps']:.0f} | {ratio} | "
                     f"{r['peak']:.0f} MB | {peak_ratio} | {fp} | {fc} | {'ok' if r['verify'] else 'FAILED'} |")
    if len(rows) > 1:
        lines += ["", f"peak RSS, largest ÷ smallest file: {rows[-1]['peak'] / rows[0]['peak']:.2f}"]
    if not args.no_resume:
        lines += ["", "| file | killed at (chunks staged) | re-run: re-embedded / reused | share of the file re-embedded | "
                  "verify | edit at the end: re-embedded of | verify |", "|---|---:|---:|---:|---|---:|---|"]
        for r in rows:
            lines.append(f"| {r['bytes']:,} B | {r['staged_at_kill']:,} of {r['chunks']:,} | {r['reembedded']:,} / "
                         f"{r['reused']:,} | {r['reembedded'] / max(r['chunks'], 1):.1%} | "
                         f"{'ok' if r['resume_verify'] else 'FAILED'} | {r['edit_embedded']} of {r['edit_chunks']:,} | "
                         f"{'ok' if r['edit_verify'] else 'FAILED'} |")
    lines += notes
    print("\n".join(lines))
    if args.record:
        record("One large text file: memory, progress, resume, edit (bench/large_file.py)", lines)


if __name__ == "__main__":
    main()

"""--dtype fastest: CPU dtypes timed on this machine, the figures cached per host and model."""

import json

import pytest

from searchkit import dtype_speed
from searchkit.dtype_speed import DtypeSpeed, fastest
from searchkit.encoder import Encoder


def test_the_fastest_good_enough_dtype_wins():
    speeds = [DtypeSpeed("fp32", 1000, 1.0), DtypeSpeed("bf16", 1500, 0.9999), DtypeSpeed("int8", 3000, 0.97)]
    assert fastest(speeds) == "bf16"  # int8 is faster but too far from fp32
    speeds[1] = DtypeSpeed("bf16", 800, 0.9999)
    assert fastest(speeds) == "fp32"  # slower than fp32 here: never picked
    assert fastest([DtypeSpeed("fp32", 1000, 1.0), DtypeSpeed("bf16", 1000, 1.0)]) == "fp32"  # a tie stays fp32


def test_fastest_measures_once_per_host_and_model(tmp_path, monkeypatch, small_bert):
    monkeypatch.setenv("SEARCHKIT_CACHE_DIR", str(tmp_path / "cache"))
    enc = Encoder(small_bert, device="cpu", dtype="fastest")
    cached = json.loads((tmp_path / "cache" / "cpu-dtype-speed.json").read_text())
    (key, rows), = cached.items()
    assert dtype_speed.cpu_model() in key and str(small_bert) in key
    assert [r["dtype"] for r in rows] == ["fp32", "bf16", "int8"] and rows[0]["min_cosine"] == pytest.approx(1.0)
    assert enc.dtype_name == fastest([DtypeSpeed(**r) for r in rows])

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(dtype_speed, "measure", no_measuring)
    assert Encoder(small_bert, device="cpu", dtype="fastest").dtype_name == enc.dtype_name
    (tmp_path / "cache" / "cpu-dtype-speed.json").write_text("not json")  # a broken cache is measured anew
    with pytest.raises(AssertionError, match="measured again"):
        Encoder(small_bert, device="cpu", dtype="fastest")

"""Figure specs -> PNG: every kind draws, bad specs fail with a clear DataFormatError."""

from __future__ import annotations

import copy
import io
import math

import matplotlib.image as mpimg
import pytest

from sadyn.errors import DataFormatError
from sadyn.report.figures import render_png


def _decode(png: bytes):
    return mpimg.imread(io.BytesIO(png), format="png")


def _all_specs(tmp_path, make_records):
    recs = make_records(tmp_path)
    for name, rec in recs.items():
        for fig_name, spec in rec["figures"].items():
            yield f"{name}/{fig_name}", spec, tmp_path / name


def test_every_kind_renders_to_a_decodable_png(tmp_path, make_records):
    kinds = set()
    for label, spec, base in _all_specs(tmp_path, make_records):
        before = copy.deepcopy(spec)
        img = _decode(render_png(spec, base))
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50, label
        assert spec == before, f"{label}: render_png mutated its spec"
        kinds.add(spec["kind"])
        kinds.update(p["kind"] for p in spec.get("panels", []))
    assert kinds == {"line", "complex", "scatter", "hist", "bar", "png", "panels"}


def test_plot_differs_with_the_numbers():
    a = {"kind": "line", "series": [{"x": [0, 1, 2], "y": [0, 1, 4]}]}
    b = {"kind": "line", "series": [{"x": [0, 1, 2], "y": [0, 1, -4]}]}
    assert render_png(a) != render_png(b)


def test_non_finite_points_are_dropped_not_fatal():
    spec = {"kind": "scatter", "series": [{"x": [-math.inf, 0.1, None], "y": [1, math.nan, 2]}]}
    assert _decode(render_png(spec)).shape[0] > 0


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"kind": "pie"}, "unknown figure kind"),
        ({"series": []}, "'kind'"),
        ({"kind": "line"}, "'series'"),
        ({"kind": "line", "series": [{"x": [1, 2], "y": [1]}]}, "differ in length"),
        ({"kind": "line", "series": [{"x": [1, 2]}]}, "missing 'y'"),
        ({"kind": "bar", "categories": ["a"], "series": [{"values": [1, 2]}]}, "2 values"),
        ({"kind": "panels", "panels": []}, "non-empty"),
        ({"kind": "panels", "panels": [{"kind": "png", "path": "x.png"}]}, "cannot share"),
        ({"kind": "png"}, "'path'"),
    ],
)
def test_bad_specs_raise(spec, message):
    with pytest.raises(DataFormatError, match=message):
        render_png(spec)


def test_png_reference_must_be_a_png(tmp_path):
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(DataFormatError, match="not a PNG"):
        render_png({"kind": "png", "path": "fake.png"}, tmp_path)
    with pytest.raises(DataFormatError, match="cannot read"):
        render_png({"kind": "png", "path": "missing.png"}, tmp_path)

"""Figure specs (plain JSON numbers in a results file) redrawn as PNG with matplotlib.

A results file never stores pixels it cannot explain: every figure is a small spec with the
numbers, and the report redraws it. The kinds::

    {"kind": "line",    "series": [{"label", "x", "y", "yerr"?, "ylo"?, "yhi"?, "marker"?,
                                    "linestyle"?}],         # ylo/yhi: a shaded band
     "xlabel", "ylabel", "title", "xscale", "yscale", "xticks", "hlines": [{"y", "label"}],
     "vlines": [{"x", "label"}]}
    {"kind": "scatter", "series": [{"label", "x", "y", "text"?: [per-point labels]}], ...}
    {"kind": "complex", "series": [{"label", "re", "im"}], "unit_circle": true, ...}
    {"kind": "hist",    "series": [{"label", "values"}], "bins": 30, ...}
    {"kind": "bar",     "categories": [...], "series": [{"label", "values", "errors"?}], ...}
    {"kind": "png",     "path": "relative/to/results/file.png"}      # a picture made elsewhere
    {"kind": "panels",  "panels": [spec, ...], "ncols": 2, "title"}  # several axes, one image

Non-finite numbers (``-inf`` exponents, ``NaN`` for "not measured") are dropped from a plot,
never drawn as zeros.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the report is built on machines without a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from sadyn.errors import DataFormatError

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
AXES_KINDS = ("line", "scatter", "complex", "hist", "bar")
KINDS = (*AXES_KINDS, "png", "panels")


def render_png(
    spec: dict[str, Any], base_dir: str | Path | None = None, *, dpi: int = 100
) -> bytes:
    """Render one figure spec to PNG bytes.

    ``base_dir`` resolves the ``path`` of a ``png`` spec (the results file's folder). Raises
    DataFormatError on an unknown kind, a missing field, or a referenced file that is not a PNG.
    """
    kind = _kind(spec)
    if kind == "png":
        return _read_png(spec, base_dir)
    if kind == "panels":
        panels = spec.get("panels")
        if not isinstance(panels, list) or not panels:
            raise DataFormatError("a 'panels' figure needs a non-empty list 'panels'")
        for panel in panels:
            if _kind(panel) not in AXES_KINDS:
                raise DataFormatError(f"panel kind {_kind(panel)!r} cannot share a figure")
        ncols = int(spec.get("ncols", min(len(panels), 3)))
        nrows = math.ceil(len(panels) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
        for ax, panel in zip(axes.flat, panels, strict=False):  # more axes than panels
            draw(panel, ax)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        if spec.get("title"):
            fig.suptitle(str(spec["title"]))
    else:
        fig, ax = plt.subplots(figsize=(5.6, 4.0))
        draw(spec, ax)
    try:
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def draw(spec: dict[str, Any], ax: Axes) -> Axes:
    """Draw one axes-level spec (line, scatter, complex, hist, bar) onto ``ax``."""
    kind = _kind(spec)
    drawer = {
        "line": _draw_line,
        "scatter": _draw_scatter,
        "complex": _draw_complex,
        "hist": _draw_hist,
        "bar": _draw_bar,
    }.get(kind)
    if drawer is None:
        raise DataFormatError(f"figure kind {kind!r} cannot be drawn on one axes")
    drawer(spec, ax)
    for line in spec.get("hlines", []):
        ax.axhline(
            float(line["y"]), color=line.get("color", "0.4"), ls="--", lw=1, label=line.get("label")
        )
    for line in spec.get("vlines", []):
        ax.axvline(
            float(line["x"]), color=line.get("color", "0.4"), ls=":", lw=1, label=line.get("label")
        )
    if spec.get("xscale"):
        ax.set_xscale(spec["xscale"])
    if spec.get("yscale"):
        ax.set_yscale(spec["yscale"])
    if spec.get("xticks"):  # e.g. the token counts on a log axis, labelled as plain numbers
        ticks = [float(t) for t in spec["xticks"]]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    complex_plane = kind == "complex"
    ax.set_xlabel(spec.get("xlabel", "Re λ" if complex_plane else ""))
    ax.set_ylabel(spec.get("ylabel", "Im λ" if complex_plane else ""))
    if spec.get("title"):
        ax.set_title(str(spec["title"]), fontsize=10)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def _kind(spec: Any) -> str:
    if not isinstance(spec, dict) or "kind" not in spec:
        raise DataFormatError("a figure spec must be an object with a 'kind'")
    kind = spec["kind"]
    if kind not in KINDS:
        raise DataFormatError(f"unknown figure kind {kind!r} (known: {', '.join(KINDS)})")
    return kind


def _series(spec: dict[str, Any]) -> list[dict[str, Any]]:
    series = spec.get("series")
    if not isinstance(series, list):
        raise DataFormatError(f"a {spec['kind']!r} figure needs a list 'series'")
    return series


def _floats(values: Sequence[Any] | None, what: str) -> np.ndarray:
    """JSON numbers (null = missing) as a float array; NaN marks what is not drawn."""
    if values is None:
        raise DataFormatError(f"figure series is missing {what!r}")
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _pairs(s: dict[str, Any], xk: str, yk: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _floats(s.get(xk), xk), _floats(s.get(yk), yk)
    if x.shape != y.shape:
        raise DataFormatError(f"series {s.get('label')!r}: {xk} and {yk} differ in length")
    return x, y


def _draw_line(spec: dict[str, Any], ax: Axes) -> None:
    for s in _series(spec):
        x, y = _pairs(s, "x", "y")
        keep = np.isfinite(x) & np.isfinite(y)
        kw = {
            "label": s.get("label"),
            "marker": s.get("marker", "o"),
            "ms": 4,
            "ls": s.get("linestyle", "-"),
        }
        if s.get("yerr") is not None:
            err = _floats(s["yerr"], "yerr")
            (line, *_) = ax.errorbar(
                x[keep], y[keep], yerr=np.nan_to_num(err[keep]), capsize=2, **kw
            )
        else:
            (line,) = ax.plot(x[keep], y[keep], **kw)
        if s.get("ylo") is not None and s.get("yhi") is not None:
            lo, hi = _floats(s["ylo"], "ylo"), _floats(s["yhi"], "yhi")
            if lo.shape != x.shape or hi.shape != x.shape:
                raise DataFormatError(f"series {s.get('label')!r}: ylo/yhi differ in length")
            band = keep & np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(x[band], lo[band], hi[band], color=line.get_color(), alpha=0.18, lw=0)


def _draw_scatter(spec: dict[str, Any], ax: Axes) -> None:
    for s in _series(spec):
        x, y = _pairs(s, "x", "y")
        keep = np.isfinite(x) & np.isfinite(y)
        ax.scatter(x[keep], y[keep], label=s.get("label"), marker=s.get("marker", "o"), s=22)
        for xi, yi, text, k in zip(x, y, s.get("text") or [], keep, strict=False):
            if k and text:
                ax.annotate(
                    str(text), (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points"
                )


def _draw_complex(spec: dict[str, Any], ax: Axes) -> None:
    if spec.get("unit_circle", True):
        t = np.linspace(0, 2 * np.pi, 256)
        ax.plot(np.cos(t), np.sin(t), color="0.5", lw=0.8, ls="--", label="unit circle")
    for s in _series(spec):
        re, im = _pairs(s, "re", "im")
        keep = np.isfinite(re) & np.isfinite(im)
        ax.scatter(re[keep], im[keep], s=10, alpha=0.7, label=s.get("label"))
    ax.set_aspect("equal", adjustable="datalim")


def _draw_hist(spec: dict[str, Any], ax: Axes) -> None:
    for s in _series(spec):
        v = _floats(s.get("values"), "values")
        v = v[np.isfinite(v)]
        if v.size:
            ax.hist(v, bins=int(spec.get("bins", 30)), alpha=0.55, label=s.get("label"))


def _draw_bar(spec: dict[str, Any], ax: Axes) -> None:
    cats = [str(c) for c in spec.get("categories", [])]
    series = _series(spec)
    width = 0.8 / max(len(series), 1)
    pos = np.arange(len(cats), dtype=float)
    for i, s in enumerate(series):
        v = _floats(s.get("values"), "values")
        if v.shape != pos.shape:
            raise DataFormatError(
                f"bar series {s.get('label')!r} has {v.size} values for {len(cats)} categories"
            )
        err = None if s.get("errors") is None else np.nan_to_num(_floats(s["errors"], "errors"))
        ax.bar(
            pos + (i - (len(series) - 1) / 2) * width,
            np.nan_to_num(v),
            width,
            yerr=err,
            label=s.get("label"),
            capsize=2,
        )
    ax.set_xticks(pos, cats, rotation=20, ha="right", fontsize=8)


def _read_png(spec: dict[str, Any], base_dir: str | Path | None) -> bytes:
    if "path" not in spec:
        raise DataFormatError("a 'png' figure needs a 'path'")
    path = Path(spec["path"])
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"cannot read the figure ({exc.strerror})", path) from exc
    if not data.startswith(_PNG_MAGIC):
        raise DataFormatError("referenced figure is not a PNG file", path)
    return data

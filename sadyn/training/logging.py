"""Scalars of a run: a JSONL log (the record the report and the curve plot read) and, optionally,
TensorBoard event files. Also the training-curve figure drawn from the JSONL log.

Each JSONL line is one record ``{"kind": "train" | "eval" | "event", "step": int, ...}``.
On resume the log is cut back to the checkpoint's step, so a resumed run's log reads as if the
run had never been interrupted (TensorBoard gets ``purge_step`` for the same reason).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from sadyn.io import atomic_write_bytes, read_jsonl

LOG_NAME = "log.jsonl"
TB_DIR = "tensorboard"
CURVE_NAME = "curve.png"


class RunLogger:
    """Append scalars to ``out_dir/log.jsonl`` and (if ``tensorboard``) to TensorBoard."""

    def __init__(self, out_dir: str | Path, *, tensorboard: bool = True, resume_step: int = 0):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOG_NAME
        if resume_step > 0 and self.path.exists():
            truncate_log(self.path, resume_step)
        elif resume_step == 0:  # a fresh start (also after a kill before the first checkpoint)
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.out_dir / TB_DIR, ignore_errors=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(
                str(self.out_dir / TB_DIR), purge_step=resume_step + 1 if resume_step else None
            )

    def log(self, kind: str, step: int, scalars: dict[str, Any]) -> None:
        """Write one record; numeric values also go to TensorBoard as ``kind/name``."""
        record = {"kind": kind, "step": step, **scalars}
        self._fh.write(json.dumps(record, default=_plain) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for name, value in scalars.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def _plain(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL log (a torn last line, from a kill mid-write, is skipped)."""
    return read_jsonl(path)


def truncate_log(path: Path, step: int) -> None:
    """Keep only the records with ``step <= step`` (atomically)."""
    kept = [r for r in read_log(path) if r.get("step", 0) <= step]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    atomic_write_bytes(path, text.encode("utf-8"))


def plot_curves(log_path: str | Path, out_png: str | Path, *, title: str | None = None) -> Path:
    """Loss and evaluation board accuracy against the step, from a JSONL log (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    train = [r for r in records if r["kind"] == "train" and _finite(r.get("loss"))]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    ax_loss.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="training loss")
    keys = sorted({k for r in evals for k in r if k.endswith("board_acc") or "board_acc@" in k})
    for key in keys:
        pts = [(r["step"], r[key]) for r in evals if key in r]
        ax_acc.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", ms=3, label=key)
    online = any(k.startswith("online/") for k in keys)
    weights = "EMA weights; online/: raw weights" if online else "EMA weights"
    ax_acc.set(xlabel="step", ylabel="board accuracy (%)", title=f"evaluation ({weights})")
    if keys:
        ax_acc.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)

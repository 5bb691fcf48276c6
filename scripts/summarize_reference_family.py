"""Curves and tables of the reference-family runs, from their training logs.

Reads ``results/reference-family/<run>/train-log.jsonl`` (a copy of the run's ``log.jsonl``)
for every run folder that has one; writes ``curves.png`` (blank-cell and board accuracy against
the step, online and EMA weights, ID and OOD, plus the training loss) and ``curves.md`` (the
same numbers as tables), and prints the tables.

usage: .venv/bin/python scripts/summarize_reference_family.py [results/reference-family]
"""

from __future__ import annotations

import sys
from pathlib import Path

from sadyn.training.logging import read_log

# (label, log key without the weights prefix)
COLUMNS = (
    ("ID cell T=16", "id/cell_acc@16"),
    ("ID board T=16", "id/board_acc@16"),
    ("ID board T=64", "id/board_acc@64"),
    ("OOD cell T=16", "ood/cell_acc@16"),
    ("OOD board T=16", "ood/board_acc@16"),
    ("OOD board T=64", "ood/board_acc@64"),
)
WEIGHTS = (("online", "online/"), ("EMA", ""))


def runs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "train-log.jsonl").is_file())


def table(run: Path) -> list[str]:
    evals = [r for r in read_log(run / "train-log.jsonl") if r["kind"] == "eval"]
    head = ["step", "weights", *(c[0] for c in COLUMNS)]
    lines = [f"### {run.name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in evals:
        for label, prefix in WEIGHTS:
            if f"{prefix}id/cell_acc@16" not in r:
                continue
            vals = [
                f"{100 * r[prefix + key]:.1f}" if prefix + key in r else "-" for _, key in COLUMNS
            ]
            lines.append(f"| {r['step']} | {label} | " + " | ".join(vals) + " |")
    return [*lines, ""]


def plot(root: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("ID blank-cell accuracy, T=16 (%)", "id/cell_acc@16"),
        ("ID board accuracy, T=16 (%)", "id/board_acc@16"),
        ("OOD board accuracy, T=64 (%)", "ood/board_acc@64"),
    )
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs(root)):
        records = read_log(run / "train-log.jsonl")
        evals = [r for r in records if r["kind"] == "eval"]
        color = colors[i % len(colors)]
        for ax, (title, key) in zip(axes, panels, strict=False):
            for label, prefix in WEIGHTS:
                pts = [(r["step"], 100 * r[prefix + key]) for r in evals if prefix + key in r]
                if pts:
                    style = "-" if label == "online" else "--"
                    ax.plot(
                        *zip(*pts, strict=True),
                        style,
                        marker="o",
                        ms=3,
                        color=color,
                        label=f"{run.name} ({label})",
                    )
            ax.set(xlabel="step", title=title, ylim=(-2, 102))
        train = [r for r in records if r["kind"] == "train"]
        axes[3].plot(
            [r["step"] for r in train], [r["ce"] for r in train], color=color, lw=1, label=run.name
        )
    axes[3].set(xlabel="step", title="training cross-entropy (final step)", yscale="log")
    axes[0].legend(fontsize=7)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(root: Path) -> None:
    lines = [
        "Written by scripts/summarize_reference_family.py from each run's train-log.jsonl",
        "(300 boards per set per evaluation; online = the raw weights).",
        "",
    ]
    for run in runs(root):
        lines += table(run)
    text = "\n".join(lines)
    (root / "curves.md").write_text(text + "\n")
    plot(root, root / "curves.png")
    print(text)


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1] / "results" / "reference-family"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)

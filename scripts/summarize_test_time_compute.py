"""Tables of the test-time compute study: single runs (ID / OOD against T) and votes
(K x T x rule).

Reads ``results/test-time-compute/<run>/eval-{id,ood}.json``
(``scripts/eval-test-time-compute-runs.sh``) and ``results/test-time-compute/<run>/vote-ood_*.json``
(``scripts/vote-test-time-compute.sh``); prints Markdown tables and writes them to
``results/test-time-compute/tables.md``; draws ``accuracy_vs_K_T.png`` (board accuracy against T,
one line per run / K / rule) when votes exist.

usage: .venv/bin/python scripts/summarize_test_time_compute.py [results/test-time-compute]
"""

from __future__ import annotations

import sys
from pathlib import Path

from sadyn.results import read_results


def pct(v: float) -> str:
    return f"{100 * v:.1f}"


def single_table(root: Path, ood_file: str = "eval-ood.json") -> list[str]:
    lines = [
        "| run | training wall (min) | ID T=16 | ID T=32 | OOD T=16 | 32 | 64 | 128 | 256 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in sorted(p for p in root.iterdir() if (p / ood_file).is_file()):
        ood = read_results(d / ood_file)["data"]["ood"]
        idf = d / "eval-id.json"
        ids = read_results(idf)["data"]["id"] if idf.is_file() else None
        wall = "-"
        if (d / "summary.json").is_file():
            import json

            s = json.loads((d / "summary.json").read_text())
            wall = f"{s.get('wall_time_s', 0) / 60:.1f} ({s.get('status')})"
        idv = [pct(a) for a in ids["board_accuracy"][:2]] if ids else ["-", "-"]
        oodv = dict(zip(ood["steps"], ood["board_accuracy"], strict=True))
        cells = [pct(oodv[t]) if t in oodv else "-" for t in (16, 32, 64, 128, 256)]
        lines.append(f"| {d.name} | {wall} | {' | '.join(idv)} | {' | '.join(cells)} |")
    return lines


def summary_table(root: Path) -> list[str]:
    """The runs' own final evaluation (``summary.json``; the GPU jobs evaluate 1,000 boards per
    set at T = 16..256; a run with restart noise is evaluated from a random restart)."""
    import json

    lines = [
        "| run | status | steps | wall (min) | ID T=16 | OOD T=16 | 32 | 64 | 128 | 256 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in sorted(root.glob("*/summary.json")):
        s = json.loads(f.read_text())
        m = s.get("metrics", {})
        idb = m.get("id", {}).get("board_accuracy", {})
        oodb = m.get("ood", {}).get("board_accuracy", {})
        cells = [pct(oodb[str(t)]) if str(t) in oodb else "-" for t in (16, 32, 64, 128, 256)]
        lines.append(
            f"| {f.parent.name} | {s.get('status')} | {s.get('step')} | "
            f"{s.get('wall_time_s', 0) / 60:.1f} | {pct(idb['16']) if '16' in idb else '-'} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def vote_tables(root: Path) -> tuple[list[str], list[tuple[str, dict]]]:
    lines: list[str] = []
    found = []
    for f in sorted(root.glob("*/vote-ood_*.json")):
        rec = read_results(f)
        res = rec["data"]["ood"]
        found.append((f"{f.parent.name} {f.stem.removeprefix('vote-ood_')}", res))
        steps = res["steps"]
        lines += [
            f"**{f.parent.name}**, K = {res['votes']}, {res['n']} OOD boards, halt "
            f"{res.get('halt', 'none')}, anchor {res.get('anchor')}, "
            f"{rec['wall_time_s'] / 60:.1f} min ({res.get('batch_size')} rows per chunk): "
            f"`{f}`",
            "",
            "| rule | " + " | ".join(f"T={t}" for t in steps) + " |",
            "|---|" + "---|" * len(steps),
        ]
        lines.append(
            "| single restart (mean of K) | "
            + " | ".join(pct(a) for a in res["mean_board_accuracy"])
            + " |"
        )
        for rule, r in res.get("rules", {}).items():
            lines.append(f"| {rule} | " + " | ".join(pct(a) for a in r["board_accuracy"]) + " |")
        lines.append(
            "| oracle (any of K) | "
            + " | ".join(pct(a) for a in res["oracle_board_accuracy"])
            + " |"
        )
        lines.append(
            "| mean loops run | " + " | ".join(f"{v:.1f}" for v in res["mean_loops"]) + " |"
        )
        if "distinct_answers" in res:
            lines.append(
                "| distinct answers among K | "
                + " | ".join(f"{v:.2f}" for v in res["distinct_answers"])
                + " |"
            )
        lines.append("")
    return lines, found


def plot(found: list[tuple[str, dict]], root: Path, out: Path) -> None:
    """Verifier-vote accuracy (solid) and one restart (dotted) against T for every vote file,
    with the deterministic single run on the same boards (black) where it exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    for name, res in found:
        line = ax.plot(
            res["steps"],
            [
                100 * a
                for a in res.get("rules", {})
                .get("verifier", {})
                .get("board_accuracy", res["board_accuracy"])
            ],
            marker="o",
            label=f"{name}: verifier",
        )[0]
        ax.plot(
            res["steps"],
            [100 * a for a in res["mean_board_accuracy"]],
            ":",
            color=line.get_color(),
            label=f"{name}: one restart",
        )
    for f in sorted(root.glob("*/eval-ood_n200.json")):
        res = read_results(f)["data"]["ood"]
        ax.plot(
            res["steps"],
            [100 * a for a in res["board_accuracy"]],
            "k--",
            marker="s",
            label=f"{f.parent.name}: deterministic single run",
        )
    ax.set_xscale("log", base=2)
    ax.set(
        xlabel="loop budget T",
        ylabel="OOD board accuracy (%)",
        title="test-time compute: K restarts x T loops (200 OOD boards)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/test-time-compute")
    lines = ["## Single runs (deterministic start), board accuracy %", ""]
    lines += single_table(root)
    halted = single_table(root, "eval-ood_halt-valid.json")
    if len(halted) > 2:
        lines += ["", "## Single runs with halting at a valid solution (--halt valid)", ""]
        lines += halted
    lines += ["", "## The runs' final evaluation (summary.json), board accuracy %", ""]
    lines += summary_table(root)
    votes, found = vote_tables(root)
    if votes:
        lines += ["", "## Voting (OOD), board accuracy %", "", *votes]
        plot([f for f in found if f[1]["n"] == 200], root, root / "accuracy_vs_K_T.png")
    text = "\n".join(lines) + "\n"
    (root / "tables.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

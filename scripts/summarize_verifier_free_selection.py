"""Tables (``tables.md``) and the accuracy-against-compute figures of this folder's
``eval-*.json`` files.

    .venv/bin/python scripts/summarize_verifier_free_selection.py
"""

from __future__ import annotations

import json
from pathlib import Path

# the results this script reads and writes
HERE = Path(__file__).resolve().parents[1] / "results" / "verifier-free-selection"
SELECTORS = (
    "learned",
    "confidence",
    "settling",
    "energy-slope",
    "persistence",
    "energy",
    "stability",
    "ftle",
    "verifier",
)
# what makes two evaluations shards of one: the same restarts, rules, budgets, model and head
SHARD_KEYS = ("votes", "halt", "vote", "steps", "restart_noise")


def pct(xs):
    return " | ".join(f"{100 * x:.1f}" for x in xs)


def table(name: str, res: dict) -> list[str]:
    steps, k = res["steps"], res["votes"]
    cfg = res.get("config", {})
    lines = [
        f"### `{name}`: K = {k}, halting `{res['halt']}`, {res['n']} boards "
        f"({cfg.get('boards', '?')}), restart noise {res.get('restart_noise')}, "
        f"{res['cpu_time_s'] / 60:.1f} CPU-minutes",
        "",
        "| board accuracy (%) | " + " | ".join(f"T={t}" for t in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    by = res.get("by_votes", {})
    if "1" in by:
        lines.append(
            f"| single run (K=1, deterministic) | {pct(by['1']['rules']['learned'])} |"
            if "learned" in by["1"]["rules"]
            else f"| single run (K=1) | {pct(next(iter(by['1']['rules'].values())))} |"
        )
    lines.append(f"| single restart (mean of {k}) | {pct(res['mean_board_accuracy'])} |")
    for rule in SELECTORS:
        if rule in res.get("rules", {}):
            lines.append(f"| {rule} vote | {pct(res['rules'][rule]['board_accuracy'])} |")
    lines.append(f"| oracle (any of {k}) | {pct(res['oracle_board_accuracy'])} |")
    if "distinct_answers" in res:
        lines.append(
            "| distinct answers among K | "
            + " | ".join(f"{d:.1f}" for d in res["distinct_answers"])
            + " |"
        )
    lines.append(
        "| mean loops per restart | " + " | ".join(f"{x:.1f}" for x in res["mean_loops"]) + " |"
    )
    if res.get("auroc"):
        lines += [
            "",
            "| AUROC of the score vs board right (all restarts) | "
            + " | ".join(f"T={t}" for t in steps)
            + " |",
            "|---|" + "---|" * len(steps),
        ]
        for rule in SELECTORS:
            if rule in res["auroc"]:
                lines.append(
                    f"| {rule} | " + " | ".join(f"{a:.3f}" for a in res["auroc"][rule]) + " |"
                )
    for kk, row in by.items():
        if kk in ("1", str(k)):
            continue
        lines += [
            "",
            f"K = {kk} (the first {kk} restarts of each board): "
            + "; ".join(f"{r} {pct(row['rules'][r])}" for r in SELECTORS if r in row["rules"])
            + f"; oracle {pct(row['oracle_board_accuracy'])}",
        ]
    return [*lines, ""]


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``p`` of ``n`` boards."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    return centre - half, centre + half


def pool_shards(evals: dict[str, dict]) -> dict[str, dict]:
    """Evaluations of disjoint board rows with the same settings, model and head, pooled into
    one (board-weighted means of the accuracies, loops and distinct answers; the AUROC is the
    board-weighted mean of the shards' AUROCs, each over its own restarts, not one AUROC over
    all restarts). Key: ``TAG-pooled`` of the groups with two or more shards."""
    groups: dict[tuple, list[str]] = {}
    for name, res in evals.items():
        cfg = res.get("config", {})
        key = (
            *(json.dumps(res.get(k)) for k in SHARD_KEYS),
            cfg.get("model_sha256"),
            cfg.get("selector_sha256"),
            json.dumps(cfg.get("pool_sha256")),
        )
        groups.setdefault(key, []).append(name)
    pooled = {}
    for names in groups.values():
        rows = [evals[n]["config"].get("first", 0) for n in names]
        if len(names) < 2 or len(set(rows)) < len(rows):
            continue
        shards = [evals[n] for n in names]
        w = [r["n"] for r in shards]
        total = sum(w)

        def mean(get, shards=shards, w=w, total=total):
            cols = zip(*(get(r) for r in shards), strict=True)
            return [sum(wi * v for wi, v in zip(w, c, strict=True)) / total for c in cols]

        first = shards[0]
        res = {k: first[k] for k in ("steps", "votes", "halt", "vote", "restart_noise")}
        res["n"] = total
        res["shards"] = sorted(n for n in names)
        res["cpu_time_s"] = sum(r["cpu_time_s"] for r in shards)
        for key in ("mean_board_accuracy", "oracle_board_accuracy", "mean_loops"):
            res[key] = mean(lambda r, key=key: r[key])
        if all("distinct_answers" in r for r in shards):
            res["distinct_answers"] = mean(lambda r: r["distinct_answers"])
        res["rules"] = {
            rule: {"board_accuracy": mean(lambda r, rule=rule: r["rules"][rule]["board_accuracy"])}
            for rule in first["rules"]
        }
        res["auroc"] = {
            rule: mean(lambda r, rule=rule: r["auroc"][rule]) for rule in first.get("auroc", {})
        }
        res["config"] = {
            "boards": "shards of rows "
            + ", ".join(r["config"]["boards"].split("rows ")[-1] for r in shards)
        }
        pooled[f"{min(names)}-pooled"] = res
    return pooled


def pooled_lines(name: str, res: dict) -> list[str]:
    """The headline of a pooled evaluation: each rule's accuracy at the largest T with its 95%
    Wilson interval over the pooled boards."""
    t, n = res["steps"][-1], res["n"]
    out = [f"Pooled `{name}` at T = {t}, {n} boards (95% Wilson intervals):", ""]
    for rule, row in res["rules"].items():
        a = row["board_accuracy"][-1]
        lo, hi = wilson(a, n)
        out.append(f"- {rule} vote: {100 * a:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]")
    a = res["oracle_board_accuracy"][-1]
    lo, hi = wilson(a, n)
    out += [f"- oracle: {100 * a:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]", ""]
    return out


def compute_points(res: dict, rule: str):
    """(loop steps per board, board accuracy %) for every K of the grid and T."""
    pts = []
    by = res.get("by_votes") or {
        str(res["votes"]): {
            "rules": {r: v["board_accuracy"] for r, v in res["rules"].items()},
            "mean_loops": res["mean_loops"],
            "oracle_board_accuracy": res["oracle_board_accuracy"],
        }
    }
    for kk, row in by.items():
        acc = row["oracle_board_accuracy"] if rule == "oracle" else row["rules"].get(rule)
        if acc is None or (kk == "1" and rule != "learned"):
            continue
        loops = row.get("mean_loops", res["mean_loops"])
        pts += [
            (int(kk) * lp, 100 * a, int(kk), t)
            for lp, a, t in zip(loops, acc, res["steps"], strict=True)
        ]
    return pts


def plot(results: dict[str, dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {
        "learned": "C0",
        "confidence": "C1",
        "settling": "C2",
        "energy-slope": "C3",
        "persistence": "C4",
        "energy": "C5",
        "verifier": "k",
        "oracle": "0.5",
    }
    for res in results.values():
        halted = res["halt"] != "none"
        for rule, color in styles.items():
            pts = compute_points(res, rule)
            if not pts:
                continue
            for kk in sorted({p[2] for p in pts}):
                sub = sorted(p for p in pts if p[2] == kk)
                label = (
                    "single run (K=1)"
                    if kk == 1
                    else f"{rule}{'' if rule == 'oracle' else ' vote'}, K={kk}"
                ) + (f", {res['halt']}" if halted else "")
                ax.plot(
                    [p[0] for p in sub],
                    [p[1] for p in sub],
                    color="C9" if kk == 1 else color,
                    marker="s" if halted else "o",
                    ms=3,
                    linestyle="--" if rule == "oracle" else (":" if halted else "-"),
                    alpha=1.0 if kk == res["votes"] or kk == 1 else 0.35,
                    label=label if (kk == res["votes"] or kk == 1) else None,
                )
    ax.set_xscale("log", base=2)
    ax.set(
        xlabel="loop steps run per board (restarts x loops, with halting)",
        ylabel="board accuracy (%)",
        title=title,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    evals = {
        p.stem[len("eval-") :]: json.loads(p.read_text()) for p in sorted(HERE.glob("eval-*.json"))
    }
    header = "# Tables (generated by scripts/summarize_verifier_free_selection.py from eval-*.json)"
    lines = [header, ""]
    for name, res in evals.items():
        lines += table(name, res)
    for name, res in pool_shards(evals).items():
        lines += table(name, res) + pooled_lines(name, res)
    (HERE / "tables.md").write_text("\n".join(lines) + "\n")
    for data in ("ood", "id"):
        sub = {k: v for k, v in evals.items() if k.startswith(data)}
        if sub:
            plot(
                sub,
                HERE / f"compute-{data}.png",
                f"{data.upper()} boards: accuracy against compute (small-vote-wide)",
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Assemble BENCHMARKS.md from the per-package sections in benchmarks/results/*.md.

Each benchmark script writes its own section (figures measured side by side in one run);
this only concatenates them, in layer order, under a common header.
"""

from __future__ import annotations

from pathlib import Path

ORDER = (
    "dynamics",
    "dynamics_small",
    "sudoku",
    "models",
    "training",
    "training_gpu",
    "probes",
    "experiments",
)
HEADER = """# Benchmarks

Measured by hand with `benchmarks/bench_*.py` (each writes `benchmarks/results/<name>.md`;
`python benchmarks/collect.py` assembles this file). Speed targets live here, never in unit
tests. Ratios are measured side by side in one run; absolute times depend on the machine.

**Caveat for this round**: every figure was taken on a 2-core CPU shared with other jobs (load
average 6-10). Absolute times are pessimistic, and runs with 2 intra-op threads were dominated
by OpenMP contention (1 thread was about 5x faster under that load); ratios from the same run
are the figures to trust. Rerun on an idle machine for absolute numbers.
"""


def main() -> None:
    root = Path(__file__).resolve().parent
    parts = {p.stem: p.read_text(encoding="utf-8").strip() for p in (root / "results").glob("*.md")}
    names = [n for n in ORDER if n in parts] + sorted(set(parts) - set(ORDER))
    text = HEADER + "".join(f"\n{parts[n]}\n" for n in names)
    (root.parent / "BENCHMARKS.md").write_text(text, encoding="utf-8")
    print(f"BENCHMARKS.md: {', '.join(names)}")


if __name__ == "__main__":
    main()

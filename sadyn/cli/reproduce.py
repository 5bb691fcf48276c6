"""``sadyn reproduce NAME|all --preset tiny|small|paper --out DIR``: run the paper's claims.

Each recipe writes ``DIR/<name>/results.json`` (numbers, figure specs, verdict); trained
models are cached in ``DIR/cache`` (or ``--cache`` / ``$SADYN_CACHE``) and reused by every
recipe and every later run that trains the same config. The report is written to
``DIR/report.html`` at the end unless ``--no-report``.
"""

from __future__ import annotations

import argparse

from sadyn.cli._args import add_threads
from sadyn.errors import SadynError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run the paper's claims as judged experiments (one recipe per claim)",
        description="Run recipes (or 'all'), each judging one claim of the paper with a "
        "pre-declared criterion; write DIR/<name>/results.json and DIR/report.html.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="recipe names, or 'all'")
    p.add_argument(
        "--preset",
        default="tiny",
        choices=("tiny", "small", "paper"),
        help="tiny: seconds (CI, verdicts mostly inconclusive); small: this CPU, "
        "hours for all; paper: the paper's settings (GPU)",
    )
    p.add_argument("--out", metavar="DIR", default="out/reproduce", help="results folder")
    p.add_argument(
        "--cache",
        metavar="DIR",
        default=None,
        help="checkpoint cache (default $SADYN_CACHE or DIR/cache)",
    )
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="[NAME.]K=V",
        help="override a recipe setting, e.g. fig1-jacobian-norm.samples=20 "
        "(the NAME. prefix may be left out when one recipe runs); V is JSON or text",
    )
    p.add_argument("--list", action="store_true", help="list the recipes and their settings")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the models each recipe would train and whether the cache holds "
        "them; run nothing",
    )
    p.add_argument(
        "--keep-going", action="store_true", help="record a recipe that errors and run the others"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip recipes whose DIR/<name>/results.json holds a run with the same "
        "preset and settings (re-judged), e.g. after a killed run",
    )
    p.add_argument(
        "--export-jobs",
        metavar="FILE",
        default=None,
        help="write the models the recipes may use as a JSON job list (one per distinct "
        "training config, most decisive first: {name, config, priority, labels}); with --cache, "
        "only those the cache does not hold yet; train nothing",
    )
    p.add_argument(
        "--max-jobs",
        type=int,
        default=None,
        metavar="N",
        help="with --export-jobs: keep the N most decisive jobs",
    )
    p.add_argument(
        "--import-runs",
        metavar="DIR",
        default=None,
        help="install finished run folders under DIR (trained elsewhere from an exported job "
        "list) into the cache after checking each config's hash and checkpoint; then run NAMEs "
        "if given",
    )
    p.add_argument(
        "--no-train",
        action="store_true",
        help="use only models already in the cache (e.g. imported with --import-runs); the "
        "others are recorded as not trained in each results file, never trained here",
    )
    p.add_argument("--no-report", action="store_true", help="do not write DIR/report.html")
    add_threads(p)
    p.add_argument(
        "--device",
        default="auto",
        help="where models are probed: auto (cuda if available), cpu, cuda[:i]",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress output (a bar on a terminal, lines with rate and ETA in a log)",
    )
    p.set_defaults(func=run)


def parse_settings(settings: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """``["fig1-jacobian-norm.samples=20", "seed=1"]`` -> ``{recipe: {key: value}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SadynError(f"--set {item!r}: expected [NAME.]KEY=VALUE")
        name, dot, field = key.rpartition(".")
        if not dot:
            if len(names) != 1:
                raise SadynError(
                    f"--set {item!r}: name the recipe (NAME.{key}=...) when several run"
                )
            name, field = names[0], key
        out.setdefault(name, {})[field] = value
    return out


def print_plan(
    names: list[str],
    preset: str,
    overrides: dict[str, dict[str, str]],
    cache_dir: str | None,
    out: str,
) -> None:
    """The training runs of ``names`` at ``preset``: one line per model, shared ones once."""
    from sadyn.experiments.cache import CheckpointCache, default_cache_dir
    from sadyn.experiments.registry import get_recipe

    cache = CheckpointCache(cache_dir if cache_dir is not None else default_cache_dir(out))
    seen: set[str] = set()
    for name in names:
        recipe = get_recipe(name)
        models = recipe.models(recipe.config(preset, overrides.get(name)))
        print(f"{name}: {len(models)} model(s)")
        for label, tc in models.items():
            key = cache.name(tc)
            state = (
                "cached"
                if cache.contains(tc)
                else "shared (trained above)"
                if key in seen
                else "to train"
            )
            seen.add(key)
            budget = f"{tc.epochs} epochs" + (
                f", <= {tc.max_minutes:g} min" if tc.max_minutes else ""
            )
            print(f"  {label:<24} {key}  {budget:<24} {state}")


def resolve_device(spec: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; others checked and passed on."""
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu" or spec.startswith("cuda"):
        if spec.startswith("cuda") and not torch.cuda.is_available():
            raise SadynError(f"--device {spec}: no CUDA device is visible")
        return spec
    raise SadynError(f"--device must be auto, cpu or cuda[:i], got {spec!r}")


def run(args: argparse.Namespace) -> int:
    from sadyn.experiments.registry import get_recipe, recipe_names, reproduce, resolve_names

    if args.list:
        for name in recipe_names():
            recipe = get_recipe(name)
            print(
                f"{name}: {recipe.title}\n  claim: {recipe.claim}\n  criterion: "
                f"{recipe.criterion}\n  presets: {', '.join(recipe.presets)}"
            )
        return 0
    if args.import_runs:
        from sadyn.experiments.cache import CheckpointCache, default_cache_dir
        from sadyn.experiments.jobs import import_runs

        cache = CheckpointCache(
            args.cache if args.cache is not None else default_cache_dir(args.out)
        )
        results = import_runs(args.import_runs, cache)
        for r in results:
            print(f"{r.action:>9}  {r.name}" + (f": {r.reason}" if r.reason else ""))
        counts = {
            a: sum(r.action == a for r in results) for a in ("installed", "cached", "skipped")
        }
        print(", ".join(f"{n} {a}" for a, n in counts.items()) + f" (cache: {cache.root})")
        if not args.names:
            return 0
    if not args.names:
        raise SadynError("name a recipe or 'all' (see --list)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    names = resolve_names(args.names)
    overrides = parse_settings(args.settings, names)
    if args.dry_run:
        print_plan(names, args.preset, overrides, args.cache, args.out)
        return 0
    if args.export_jobs:
        from sadyn.experiments.cache import CheckpointCache
        from sadyn.experiments.jobs import export_jobs, write_jobs

        held = CheckpointCache(args.cache) if args.cache else None  # left out of the list
        jobs = export_jobs(
            names, args.preset, overrides=overrides, cache=held, include_cached=held is None
        )[: args.max_jobs]
        path = write_jobs(args.export_jobs, jobs)
        print(f"{len(jobs)} job(s), most decisive first: {path}")
        return 0
    progress = not args.quiet  # a bar on a terminal, periodic lines in a log
    records = reproduce(
        names,
        args.preset,
        args.out,
        cache_dir=args.cache,
        overrides=overrides,
        progress=progress,
        verbose=not args.quiet,
        keep_going=args.keep_going,
        resume=args.resume,
        device=resolve_device(args.device),
        train=not args.no_train,
    )
    failed = False
    for rec in records:
        if "error" in rec:
            failed = True
            print(f"{'error':>13}  {rec['name']}: {rec['error']}")
            continue
        v = rec["verdict"]
        print(f"{v['status']:>13}  {rec['name']} ({rec['wall_time_s']:.1f} s): {v['reason']}")
    if not args.no_report and any("error" not in r for r in records):
        from sadyn.report import build_report

        summary = build_report(args.out)
        print(f"report: {summary.path.resolve()}")
    return 1 if failed else 0

"""``sadyn train``: train a looped model on Sudoku.

    sadyn train --preset NAME --seed S --out DIR [--resume]       (presets: ``sadyn --help``)
                [--FIELD VALUE ...]

Override scheme (one rule): every :class:`~sadyn.training.TrainConfig` field is ``--FIELD
VALUE`` with the field's name hyphenated (``--lr 5e-4``, ``--eval-steps 16,32,64``,
``--max-minutes none``; the underscored spelling ``--max_minutes`` is accepted too); the model
config is the ``model`` field, so its keys are ``--model.KEY VALUE`` (``--model.dim 128
--model.norm rms_unit``, values read as JSON when they parse, else as strings) and ``--model
KIND`` switches the model kind, keeping the other keys. ``--resume`` continues the run in DIR
(its saved config; only ``max_minutes``, ``threads``, ``device``, ``tensorboard`` and
``progress_every`` may change); DIR must hold a run (its ``config.json``), else it is an error.
Ctrl-C (SIGINT) or SIGTERM stops after the current update, writes a checkpoint and prints
the command that resumes the run; a second Ctrl-C stops at once. Runs on one CPU thread unless
``--threads N`` (or ``$OMP_NUM_THREADS``) says otherwise.

Data parallel: ``torchrun --nproc_per_node W -m sadyn.cli.train ...`` (the module runs as a
script, so torchrun can launch it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

from sadyn.cli._args import add_quiet
from sadyn.errors import SadynError
from sadyn.models import MODELS, default_config
from sadyn.training.config import TrainConfig, coerce, field_types
from sadyn.training.loop import CONFIG_NAME, train
from sadyn.training.presets import get_preset, preset_names

_DEST = "cfg__"  # argparse dest prefix of TrainConfig fields
_MODEL_DEST = "mdl__"  # ... and of model keys


def _model_keys() -> list[str]:
    """Every option of every registered model (the union: a key a kind lacks is reported by
    build_model)."""
    keys: set[str] = set()
    for kind in MODELS:
        keys.update(k for k in default_config(kind) if k != "model")
    return sorted(keys)


def _metavar(hint: Any) -> str:
    """INT, FLOAT, BOOL, STR; INT,... for tuples; X|none for optionals."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        item = _metavar(args[0])
        return f"{item},..." if args[-1] is Ellipsis else ",".join([item] * len(args))
    if args and type(None) in args:
        return f"{_metavar(next(a for a in args if a is not type(None)))}|none"
    return getattr(hint, "__name__", str(hint)).upper()


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help=f"train a looped model on Sudoku (presets {', '.join(preset_names())})",
        description=__doc__,
    )
    p.add_argument(
        "--preset",
        choices=preset_names(),
        default=None,
        help="starting configuration (default: tiny; on --resume, the run's own)",
    )
    p.add_argument("--out", required=True, help="run directory (created)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (an error if --out holds no run)",
    )
    add_quiet(p)
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved config as JSON and exit"
    )
    fields = p.add_argument_group("TrainConfig fields (see docs/training.md)")
    hints = field_types()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "model":
            fields.add_argument(
                "--model",
                dest=f"{_DEST}model",
                default=None,
                metavar="KIND",
                help=f"model kind: {', '.join(MODELS)}",
            )
            continue
        fields.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"{_DEST}{f.name}",
            default=None,
            metavar=_metavar(hints[f.name]),
            help=f"default {getattr(defaults, f.name)!r}",
        )
    model = p.add_argument_group("model config keys (--model.KEY VALUE)")
    for key in _model_keys():
        model.add_argument(
            f"--model.{key.replace('_', '-')}",
            dest=f"{_MODEL_DEST}{key}",
            default=None,
            metavar="VALUE",
            help=f"model config key {key!r} (JSON or a string; see docs/models.md)",
        )
    p.set_defaults(func=run)


def _json_or_str(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig changes given on the command line (strings coerced to field types)."""
    hints = field_types()
    changes: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if value is None:
            continue
        if dest == f"{_DEST}model":
            model["model"] = value
        elif dest.startswith(_DEST):
            name = dest[len(_DEST) :]
            changes[name] = coerce(hints[name], value, name)
        elif dest.startswith(_MODEL_DEST):
            model[dest[len(_MODEL_DEST) :]] = _json_or_str(value)
    if model:
        changes["model"] = model
    return changes


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Preset (or, on --resume without --preset, the run's saved config) + overrides."""
    changes = overrides_from_args(args)
    saved = Path(args.out) / CONFIG_NAME
    if args.resume and args.preset is None and saved.exists():
        try:
            base = TrainConfig.from_dict(json.loads(saved.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise SadynError(f"{saved}: unreadable run config ({exc})") from exc
        model = {**base.model, **changes.pop("model", {})}
        return base.replace(model=model, **changes)
    return get_preset(args.preset or "tiny", **changes)


def check_resumable(out: str | Path) -> None:
    """``--resume`` needs a run in ``out``: its ``config.json`` (written before the first step).
    A missing folder, an empty one, or one killed before the config was written is an error,
    not a fresh run with default settings."""
    out = Path(out)
    if not out.is_dir():
        raise SadynError(f"--resume: {out} does not exist; drop --resume to start a new run")
    if not (out / CONFIG_NAME).is_file():
        raise SadynError(
            f"--resume: {out} holds no resumable run (no {CONFIG_NAME}); drop --resume to "
            "start a new run there"
        )


def run(args: argparse.Namespace) -> int:
    if args.resume:
        check_resumable(args.out)
    config = resolve_config(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    summary = train(config, args.out, resume=args.resume, progress=not args.quiet)
    if summary.status == "interrupted":
        print(
            f"interrupted at step {summary.step}/{summary.total_steps}; checkpoint saved: "
            f"{summary.checkpoint}\nresume with: sadyn train --out {shlex.quote(str(args.out))} "
            "--resume",
            flush=True,
        )
        return 130
    if summary.metrics:
        for name, res in summary.metrics.items():
            accs = ", ".join(f"T={t}: {100 * a:.1f}%" for t, a in res["board_accuracy"].items())
            print(f"{name} board accuracy (EMA): {accs}")
    print(f"{summary.status} at step {summary.step}/{summary.total_steps}; run: {summary.out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m sadyn.cli.train ...`` (what torchrun launches)."""
    from sadyn.cli import main as sadyn_main

    return sadyn_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

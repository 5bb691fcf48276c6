"""Export a trained run as a pretrained model (one command).

    python -m sadyn.pretrained.export RUN_DIR --name small-itrsa [--trained-on "NVIDIA H100"]
        [--eval-n 1000] [--out sadyn/pretrained]

writes ``OUT/NAME.safetensors`` (the EMA weights of the run's latest checkpoint, verified
against the checkpoint's own checksums first), ``OUT/NAME.json`` (model config, SHA-256 of the
weights file, provenance: preset, seed, steps, epochs, device trained on, wall time, final
metrics, the run folder) and, with ``--eval-n N``, ``OUT/NAME.eval.json``: ``sadyn eval NAME
--n N`` (ID and OOD, T = 16..256) on this machine, the numbers the README quotes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from sadyn.errors import CheckpointError, SadynError
from sadyn.io import atomic_write, atomic_write_json
from sadyn.pretrained import EVAL_SUFFIX, FORMAT, PACKAGE_DIR, WEIGHTS_SUFFIX, sha256_file

#: fields that may differ between a run and its preset without making it another recipe
_IGNORED = {"threads", "device", "tensorboard", "progress_every", "max_minutes", "seed"}


def match_preset(train_config: dict[str, Any]) -> str | None:
    """The training preset the run's config equals (apart from seed, threads, device and
    bookkeeping fields), or None."""
    from sadyn.training.config import TrainConfig
    from sadyn.training.presets import get_preset, preset_names

    try:
        run = TrainConfig.from_dict(dict(train_config)).to_dict()
    except (SadynError, TypeError, ValueError):
        return None
    for name in preset_names():
        preset = get_preset(name).to_dict()
        keys = (set(run) | set(preset)) - _IGNORED
        if all(run.get(k) == preset.get(k) for k in keys):
            return name
    return None


def export(
    run_dir: str | Path,
    name: str,
    *,
    out: str | Path | None = None,
    which: str = "latest",
    trained_on: str | None = None,
    preset: str | None = None,
    note: str | None = None,
) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.json`` for the run in ``run_dir`` into ``out``
    (default: the package folder); returns the manifest path."""
    from sadyn.training.checkpoint import read_checkpoint

    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise SadynError(f"--name {name!r}: use a plain name such as small-itrsa")
    run_dir = Path(run_dir)
    ckpt = read_checkpoint(run_dir, which)  # verifies every checksum of the checkpoint
    meta = ckpt.meta
    if not ckpt.ema:
        raise CheckpointError(f"{ckpt.path}: no EMA weights to export")
    folder = Path(out) if out is not None else PACKAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}{WEIGHTS_SUFFIX}"
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in ckpt.ema.items()}
    atomic_write(weights, lambda tmp: save_file(plain, str(tmp), metadata={"name": name}))
    train_config = dict(meta.get("train_config") or {})
    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
    if trained_on is None:
        device = "cuda" if "rng/cuda" in ckpt.state else "cpu"
        trained_on = f"{device} (inferred from the checkpoint's RNG state)"
    provenance = {
        "preset": preset or match_preset(train_config),
        "seed": train_config.get("seed"),
        "steps": meta.get("step"),
        "epochs": meta.get("epoch"),
        "trained_on": trained_on,
        "world_size": meta.get("world_size"),
        "torch": meta.get("torch"),
        "train_wall_time_s": summary.get("wall_time_s", meta.get("elapsed_s")),
        "status": summary.get("status"),
        "final_metrics": summary.get("metrics"),
        "run": str(run_dir),
        "checkpoint": ckpt.path.name,
        "checkpoint_ema_sha256": meta.get("sha256", {}).get("ema.safetensors"),
        "train_config": train_config,
    }
    if note:
        provenance["note"] = note
    manifest = folder / f"{name}.json"
    atomic_write_json(
        manifest,
        {
            "format": FORMAT,
            "name": name,
            "weights": weights.name,
            "sha256": sha256_file(weights),
            "model_config": dict(meta["model_config"]),
            "provenance": provenance,
        },
    )
    return manifest


def evaluate_export(manifest: str | Path, name: str, n: int, *, threads: int | None = None) -> Path:
    """``sadyn eval NAME --n N`` of an exported model (ID and OOD, T = 16..256) through the
    evaluation pipeline (:func:`sadyn.probes.evaluation.run_evaluation`), written as
    ``NAME.eval.json`` beside the manifest; prints its table and returns the results path."""
    import torch

    from sadyn.pretrained import resolve_model
    from sadyn.probes.evaluation import EvalSettings, run_evaluation, summary_text
    from sadyn.training.distributed import resolve_device

    if threads:
        torch.set_num_threads(threads)
    device = resolve_device("auto")
    model, model_config, meta = resolve_model(str(manifest), device=device)
    out = Path(manifest).parent / f"{name}{EVAL_SUFFIX}"
    # force: a re-export replaces the weights, so their evaluation is replaced with them
    settings = EvalSettings(n=n, force=True)
    result = run_evaluation(model, model_config, meta, settings, out, device=device)
    print(summary_text(result))
    return result.out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sadyn.pretrained.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run folder")
    p.add_argument("--name", required=True, help="name to load it by, e.g. small-itrsa")
    p.add_argument("--out", default=None, help=f"folder to write to (default {PACKAGE_DIR})")
    p.add_argument("--which", choices=("latest", "best"), default="latest", help="checkpoint")
    p.add_argument(
        "--trained-on", "--trained_on", default=None, help='device, e.g. "NVIDIA H100 (1 GPU)"'
    )
    p.add_argument("--preset", default=None, help="preset name (default: matched from config)")
    p.add_argument("--note", default=None, help="free text kept in the provenance")
    p.add_argument(
        "--eval-n",
        "--eval_n",
        type=int,
        default=0,
        help="also run `sadyn eval NAME --n N` on this machine and write NAME.eval.json",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for the eval")
    args = p.parse_args(argv)
    try:
        manifest = export(
            args.run_dir,
            args.name,
            out=args.out,
            which=args.which,
            trained_on=args.trained_on,
            preset=args.preset,
            note=args.note,
        )
        info = json.loads(manifest.read_text(encoding="utf-8"))
        print(f"wrote {manifest} and {manifest.parent / info['weights']}")
        print(f"  sha256 {info['sha256']}")
        prov = info["provenance"]
        print(
            f"  preset {prov['preset']}, seed {prov['seed']}, {prov['steps']} steps, "
            f"trained on {prov['trained_on']}"
        )
        if args.eval_n:
            evaluate_export(manifest, args.name, args.eval_n, threads=args.threads)
    except SadynError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

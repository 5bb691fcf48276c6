"""``sadyn eval`` and ``sadyn analyze`` on the model their settings name (``checkpoint``: a run
folder, a checkpoint folder or a pretrained name): the model loaded by
:func:`sadyn.pretrained.resolve_model`, then the probes' pipeline. The commands and the demo
(:mod:`sadyn.pretrained.demo`) call these; the caller prints the summary
(``sadyn.probes.evaluation.summary_text`` / ``sadyn.probes.analysis.summary_text``)."""

from __future__ import annotations

import time

from sadyn.probes.analysis import Analysis, AnalysisSettings
from sadyn.probes.evaluation import EvalSettings, Evaluation


def evaluate_model(settings: EvalSettings) -> Evaluation:
    """:func:`sadyn.probes.evaluation.run_evaluation` of ``settings`` (checked here): a note
    printed for a training run that did not finish (evaluated at its latest checkpoint), the
    model loaded on ``settings.device`` and, where the vote or the halting needs one, a
    selector head (``settings.selector``, else the model's own) checked against it."""
    from sadyn.pretrained import resolve_model, run_status
    from sadyn.probes.evaluation import run_evaluation
    from sadyn.training.distributed import resolve_device

    settings.check()
    note = run_status(settings.checkpoint)
    if note:
        print(f"eval: note: {note}", flush=True)
    device = resolve_device(settings.device)
    model, model_config, meta = resolve_model(
        settings.checkpoint, which=settings.which, weights=settings.weights, device=device
    )
    selector = None
    if settings.needs_selector():
        from sadyn.pretrained.selector import check_selector_fits, load_selector

        spec = settings.selector or settings.checkpoint
        selector, _ = load_selector(spec)
        check_selector_fits(selector, model_config, spec)
    return run_evaluation(
        model, model_config, meta, settings, device=device, selector=selector, note=note
    )


def analyze_model(settings: AnalysisSettings) -> Analysis | None:
    """:func:`sadyn.probes.analysis.run_analysis` of ``settings`` (resolved; checked here) on
    the model loaded on ``settings.device``; its recorded wall time counts the loading. None
    with ``estimate_only``."""
    from sadyn.pretrained import resolve_model
    from sadyn.probes.analysis import run_analysis
    from sadyn.training.distributed import resolve_device

    settings.check()
    start = time.perf_counter()
    model, model_config, meta = resolve_model(
        settings.checkpoint,
        which=settings.which,
        weights=settings.weights,
        device=resolve_device(settings.device),
    )
    return run_analysis(settings, model, model_config, meta, started=start)

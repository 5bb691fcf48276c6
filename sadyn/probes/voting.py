"""Voting over K restarts of one board: scores and selection.

A model with a random initial state gives K answers to one board from K draws. A vote keeps one
of them, scored without the solution. Rules (:data:`VOTE_RULES`), for a readout of ``X_t``:

- ``energy`` (AKOrN's E-vote, ``--evote_type=sum``, in the reference's convention): lowest
  pseudo-energy summed over the states *before* each update, ``sum_{s=0..t-1} E(X_s)``.
  AKOrN's code logs the energy of the state before each step (and a leading 0, which does not
  change the sum), so the random start ``X_0`` is in the sum and the read-out state ``X_t`` is not.
- ``energy-last`` (``--evote_type=last``, the reference's convention): lowest ``E(X_{t-1})``.
- ``energy-sum`` (sadyn's earlier rule, kept): lowest ``sum_{s=1..t} E(X_s)``, the states the
  loop produced, i.e. the reference sum shifted by one step.
- ``energy-final`` (sadyn's earlier ``energy-last``): lowest ``E(X_t)``, the read-out state.
- ``confidence`` (C-vote, Kubo et al. 2026): highest mean top-1 softmax probability over the
  blank cells.
- ``verifier``: fewest Sudoku conflicts of the decoded board (:func:`board_conflicts`: repeated
  digits in rows, columns and boxes, plus givens the decoded board changed), ties broken by the
  confidence score (which lies in (0, 1], so it never outweighs one conflict).
- ``stability``: the most settled trajectory, smallest ``||X_t - X_{t-1}||`` (Frobenius over
  the board's ``(S, D)`` state).

Verifier-free selectors (:mod:`sadyn.probes.selectors` measures their calibration):

- ``settling``: smallest relative step ``||X_t - X_{t-1}|| / ||X_t||`` (the quantity of
  :func:`sadyn.probes.settling.step_changes`, scale-free unlike ``stability``).
- ``energy-slope``: flattest pseudo-energy, smallest ``|E(X_t) - E(X_{t-1})| / |E(X_t)|``.
- ``persistence``: the decoded board unchanged for the most steps (a solved board is an
  attractor of a model that settles; a wrong one keeps moving).
- ``learned``: highest ``log P(board right)`` of a learned selector head
  (:class:`sadyn.nn.selector.SelectorHead`) reading the state.
- ``ftle``: the most contracting trajectory, smallest largest finite-time Lyapunov exponent
  over the last :data:`FTLE_WINDOW` steps (a tangent vector carried along the trajectory by one
  Jacobian-vector product of the step per loop, renormalized each step; its mean log growth
  over the window). Costs one JVP per loop on top of the step.

Scores follow one convention: higher is better; ties keep the earliest restart; NaN never wins.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sadyn.errors import SadynError
from sadyn.sudoku.board import UNITS

ENERGY_RULES = ("energy", "energy-last", "energy-sum", "energy-final")
#: verifier-free selectors read from the trajectory's dynamics or a learned head
SELECTOR_RULES = ("settling", "energy-slope", "persistence", "learned", "ftle")
#: steps over which the ``ftle`` selector averages the log growth of its tangent vector
FTLE_WINDOW = 16
VOTE_RULES = ("none", *ENERGY_RULES, "confidence", "verifier", "stability", *SELECTOR_RULES)

_UNITS = torch.as_tensor(UNITS, dtype=torch.long)  # (27, 9)


def confidence_score(logits: Tensor, blank: Tensor) -> Tensor:
    """Mean top-1 softmax probability over the blank cells: logits (R, S, 9), blank (R, S)
    bool -> (R,) in [1/9, 1] (1 for a board without blanks)."""
    top1 = logits.float().softmax(-1).amax(-1)  # (R, S)
    mask = blank.to(top1.dtype)
    count = mask.sum(-1)
    mean = (top1 * mask).sum(-1) / count.clamp(min=1.0)
    return torch.where(count > 0, mean, torch.ones_like(mean))


def board_conflicts(pred: Tensor, quizzes: Tensor) -> Tensor:
    """Sudoku conflicts of decoded boards: pred (R, 81) digits 1..9, quizzes (R, 81) 0..9 ->
    (R,) long. Each of the 27 units (rows, columns, boxes) counts ``9 - #distinct digits`` (the
    repeats in it), and every given cell whose decoded digit differs from the given counts 1.
    0 iff ``pred`` is a valid solution that keeps the givens."""
    cells = pred.long()[:, _UNITS.to(pred.device)]  # (R, 27, 9)
    present = torch.zeros(*cells.shape[:2], 10, dtype=torch.bool, device=pred.device)
    present.scatter_(2, cells.clamp(0, 9), True)
    repeats = (9 - present[..., 1:].sum(-1)).sum(-1)  # (R,)
    changed = ((quizzes > 0) & (pred.long() != quizzes.long())).sum(-1)
    return repeats + changed


def energy_score(rule: str, t: int, energies: Tensor) -> Tensor:
    """Score (R,) of an energy rule for a readout at loop count ``t`` from ``energies: (T+1, R)``
    the pseudo-energies of ``X_0..X_T`` (any ``T >= t``)."""
    if rule not in ENERGY_RULES:
        raise SadynError(f"{rule!r} is not an energy rule (choose from {ENERGY_RULES})")
    if not 1 <= t < energies.shape[0]:
        raise SadynError(f"loop count {t} outside the recorded energies (0..{len(energies) - 1})")
    if rule == "energy":
        return -energies[:t].sum(0)
    if rule == "energy-last":
        return -energies[t - 1]
    if rule == "energy-sum":
        return -energies[1 : t + 1].sum(0)
    return -energies[t]


def vote_scores(
    rule: str,
    t: int,
    *,
    logits: Tensor | None = None,
    blank: Tensor | None = None,
    quizzes: Tensor | None = None,
    energies: Tensor | None = None,
    residual: Tensor | None = None,
    signals: dict[str, Tensor] | None = None,
) -> Tensor:
    """Score of each row (higher = better) for a readout at loop count ``t``.

    logits: (R, S, 9) readout at t (confidence, verifier); blank: (R, S) bool mask of blank
    cells (confidence, verifier; default ``quizzes == 0``); quizzes: (R, 81) (verifier);
    energies: (T+1, R) pseudo-energies of X_0..X_T (energy rules); residual: (R,)
    ``||X_t - X_{t-1}||`` (stability); signals: the selectors' inputs at t, each (R,):
    ``norm`` ``||X_t||`` (settling, with residual), ``energy`` and ``energy_prev`` ``E(X_t)``,
    ``E(X_{t-1})`` (energy-slope), ``unchanged`` steps the decoded board has not changed
    (persistence), ``log_prob`` a selector head's log P(right) (learned), ``ftle`` the largest
    finite-time exponent over the last steps (ftle). Returns (R,).
    """
    if rule in SELECTOR_RULES:
        return selector_score(rule, residual=residual, signals=signals or {})
    if rule in ENERGY_RULES:
        if energies is None:
            raise SadynError(f"the {rule} vote needs the pseudo-energies of the trajectory")
        return energy_score(rule, t, energies)
    if rule in ("confidence", "verifier"):
        if blank is None and quizzes is not None:
            blank = quizzes == 0
        if logits is None or blank is None:
            raise SadynError(f"the {rule} vote needs logits and the blank mask")
        conf = confidence_score(logits, blank)
        if rule == "confidence":
            return conf
        if quizzes is None:
            raise SadynError("the verifier vote needs the quizzes (givens)")
        pred = logits.argmax(-1) + 1
        return conf - board_conflicts(pred, quizzes).to(conf.dtype)
    if rule == "stability":
        if residual is None:
            raise SadynError("the stability vote needs the residual ||X_t - X_{t-1}||")
        return -residual.float()
    raise SadynError(f"unknown vote rule {rule!r} (choose from {VOTE_RULES[1:]})")


#: the signals each verifier-free selector reads (see :func:`vote_scores`)
SELECTOR_SIGNALS = {
    "settling": ("norm",),
    "energy-slope": ("energy", "energy_prev"),
    "persistence": ("unchanged",),
    "learned": ("log_prob",),
    "ftle": ("ftle",),
}


def selector_score(
    rule: str, *, residual: Tensor | None = None, signals: dict[str, Tensor]
) -> Tensor:
    """The score (R,) of a verifier-free selector rule from its signals (:func:`vote_scores`)."""
    missing = [k for k in SELECTOR_SIGNALS[rule] if k not in signals]
    if missing or (rule == "settling" and residual is None):
        need = ("residual",) if rule == "settling" else ()
        raise SadynError(f"the {rule} vote needs {', '.join(need + SELECTOR_SIGNALS[rule])}")
    if rule == "settling":
        assert residual is not None
        return -(residual.float() / signals["norm"].float())
    if rule == "energy-slope":
        e, e_prev = signals["energy"].float(), signals["energy_prev"].float()
        return -((e - e_prev).abs() / e.abs())
    if rule == "persistence":
        return signals["unchanged"].float()
    if rule == "ftle":
        return -signals["ftle"].float()
    return signals["log_prob"].float()


def select_votes(scores: Tensor) -> Tensor:
    """Index of the chosen vote per board: scores (B, K) -> (B,) long, the first maximum."""
    # argmax returns the first maximal index; NaN scores (a diverged restart) never win
    return torch.nan_to_num(scores.float(), nan=-torch.inf).argmax(dim=1)


def parse_rules(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"confidence,verifier"``, ``"all"`` or a sequence -> a tuple of known rules (the first
    is the headline rule); ``"all"`` is every rule but ``none``, ``learned`` (which needs a
    selector head) and ``ftle`` (one JVP per loop, several times the loop's cost): name them."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    items = [s for s in items if s]
    if items == ["all"]:
        return tuple(r for r in VOTE_RULES[1:] if r not in ("learned", "ftle"))
    if not items:
        raise SadynError("no vote rule given")
    for rule in items:
        if rule not in VOTE_RULES:
            raise SadynError(f"unknown vote rule {rule!r} (choose from {VOTE_RULES} or 'all')")
    if "none" in items and len(items) > 1:
        raise SadynError("vote rule 'none' cannot be combined with other rules")
    return tuple(dict.fromkeys(items))

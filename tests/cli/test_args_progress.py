"""The command line's one convention (sadyn.cli._args) and progress off a terminal."""

import argparse
import io

import pytest

from sadyn.cli import build_parser, main
from sadyn.cli._args import choice_list, int_list
from sadyn.progress import LineProgress, format_seconds, progress


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _all_parsers():
    top = build_parser()
    for name, sub in _subparsers(top):
        yield name, sub
        for inner, subsub in _subparsers(sub):
            yield f"{name} {inner}", subsub


# reproduce and paper belong to other issues; they adopt the convention on their own schedule
OWNED = ("data", "data make", "data stats", "train", "eval", "analyze", "demo", "report")


@pytest.mark.parametrize("name", OWNED)
def test_every_option_is_hyphenated_and_documented(name):
    parsers = dict(_all_parsers())
    parser = parsers[name]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        for opt in action.option_strings:
            if opt.startswith("--"):
                assert "_" not in opt, f"sadyn {name}: {opt} is not hyphenated"
        assert action.help, f"sadyn {name}: {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("name", ["train", "eval", "analyze", "demo", "data make", "data stats"])
def test_quiet_everywhere_with_no_progress_alias(name):
    parser = dict(_all_parsers())[name]
    opts = {o for a in parser._actions for o in a.option_strings}
    assert {"--quiet", "--no-progress"} <= opts
    assert "--no-progress" not in parser.format_help()  # an alias, not advertised


def test_underscored_flags_are_aliases():
    parser = build_parser()
    hyph = parser.parse_args(
        ["train", "--out", "x", "--max-minutes", "3", "--model.relation-bias-init", "2"]
    )
    under = parser.parse_args(
        ["train", "--out", "x", "--max_minutes", "3", "--model.relation_bias_init", "2"]
    )
    assert vars(hyph) == vars(under)
    assert hyph.cfg__max_minutes == "3" and hyph.mdl__relation_bias_init == "2"
    ev = parser.parse_args(["eval", "run", "--batch_size=7", "--data_seed", "3"])
    assert ev.batch_size == 7 and ev.data_seed == 3
    with pytest.raises(SystemExit):  # an unknown flag stays an error
        parser.parse_args(["eval", "run", "--no_such_flag", "1"])


def test_one_list_syntax():
    assert int_list("16,32, 64") == [16, 32, 64]
    with pytest.raises(argparse.ArgumentTypeError):
        int_list("16 x")
    with pytest.raises(argparse.ArgumentTypeError):
        int_list("0,16")
    assert choice_list(("a", "b"))("b,a,b") == ["b", "a"]
    with pytest.raises(argparse.ArgumentTypeError):
        choice_list(("a", "b"))("a,c")
    args = build_parser().parse_args(
        [
            "analyze",
            "run",
            "--steps",
            "0,16",
            "--probes",
            "jacobian,energy",
            "--scaling-steps",
            "16,32",
        ]
    )
    assert args.steps == [0, 16] and args.probes == ["jacobian", "energy"]
    assert args.scaling_steps == [16, 32]


def test_line_progress_prints_rate_and_eta_lines():
    now = [0.0]
    buf = io.StringIO()
    bar = LineProgress(
        total=10, desc="train", unit="step", interval=9, file=buf, clock=lambda: now[0]
    )
    for _ in range(4):
        now[0] += 5  # one step every 5 s
        bar.update(1)
    bar.set_postfix(loss="0.5")
    bar.close()
    lines = buf.getvalue().splitlines()
    assert lines, "no progress lines"
    first = lines[0]
    assert first.startswith("train: ") and "/10 step" in first and "ETA" in first
    assert "step/s" in first or "s/step" in first
    assert lines[-1].endswith("loss=0.5") and "done" in lines[-1]
    # 2 steps in the first 10 s: 5 s/step, 8 left: ETA 40 s
    assert "2/10 step (20.0%), 5 s/step, elapsed 10s, ETA 40s" in first
    assert len(lines) == 3  # at 10 s, at 20 s, and the final line


def test_progress_off_terminal_is_lines_and_silent_when_disabled():
    buf = io.StringIO()  # not a terminal
    assert isinstance(progress(range(3), file=buf), LineProgress)
    assert list(progress(range(3), enable=False)) == [0, 1, 2]
    assert format_seconds(75) == "1m15s" and format_seconds(4000) == "1h06m"
    assert format_seconds(float("nan")) == "?"


def test_dynamics_progress_reaches_a_log(capsys, monkeypatch):
    """Long dynamics loops (Lyapunov, divergence) report to a log file too, not only to a
    terminal: with stderr captured (no terminal) they print lines with count and rate."""
    from sadyn.dynamics._common import progress_bar

    monkeypatch.setenv("SADYN_PROGRESS_SECONDS", "0")  # a line at every step
    assert list(progress_bar(range(5), 5, True, "lyapunov")) == list(range(5))
    err = capsys.readouterr().err
    assert "lyapunov: 1/5" in err and "lyapunov: 4/5" in err and "ETA" in err
    assert list(progress_bar(range(5), 5, False, "lyapunov")) == list(range(5))
    assert capsys.readouterr().err == ""


def test_fallback_warning_is_one_line(monkeypatch, tmp_path, capsys):
    import warnings

    from sadyn.cli._args import one_line_warnings
    from sadyn.sudoku import rrn
    from sadyn.sudoku.datasets import PoolFallbackWarning

    monkeypatch.setattr(rrn, "_SHARED_DATA", tmp_path / "nowhere")
    monkeypatch.delenv("SADYN_SUDOKU17", raising=False)
    monkeypatch.setenv("SADYN_DATA_DIR", str(tmp_path / "cache"))
    with pytest.warns(PoolFallbackWarning) as caught:
        rc = main(["data", "make", "rrn", "--out", str(tmp_path), "--n", "18", "--quiet"])
    assert rc == 0 and len(caught) == 1
    assert "17-clue pool: fallback" in capsys.readouterr().out
    w = caught[0]
    with one_line_warnings():  # how the CLI prints it
        text = warnings.formatwarning(w.message, w.category, w.filename, w.lineno, None)
    assert text.startswith("sadyn: warning: Royle's 17-clue list not found")
    assert text.count("\n") == 1 and "SADYN_SUDOKU17=" in text
    assert "PoolFallbackWarning" not in text and "load_or_make" not in text


def test_progress_iterates_arrays_whatever_the_mode():
    import numpy as np

    rows = np.arange(6).reshape(3, 2)
    for enable in (True, False):
        got = list(progress(rows, enable=enable, file=io.StringIO()))
        assert len(got) == 3 and all(np.array_equal(a, b) for a, b in zip(got, rows, strict=True))

"""The README's command block and tour run as written (at tiny sizes), on pretrained models
exported from tiny runs trained here.

The command block is the fenced ``bash`` block after ``<!-- readme-commands -->``; each line is
run through ``sadyn.cli.main`` with a few size flags added or swapped (:data:`TINY`). A README
command that has no entry in :data:`TINY` fails the test, so the README and this test move
together. The tour is the ``python`` block after ``<!-- readme-tour -->``, executed unchanged.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import pytest
import torch

from sadyn.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"

_ANALYZE_TINY = (
    "--n 2 --horizon 4 --eig-samples 1 --eig-k 4 --k 2 --qr-steps 4 --transient 1 "
    "--ci-every 4 --sens-n 1 --sens-warmup 2 --sens-steps 10 --scaling-steps 2,4"
)
#: command prefix -> (replacements old -> new, extra flags) that shrink it to seconds
TINY: dict[str, tuple[dict[str, str], str]] = {
    "sadyn demo": ({}, "--fast --n 6 --probe-n 2 --votes 2 --train-seconds 2"),
    "sadyn data make satnet": ({}, "--n 30"),
    "sadyn data make rrn": ({}, "--n 18"),
    "sadyn data stats": ({}, ""),
    "sadyn eval small-itrsa": ({"--n 1000": "--n 6"}, ""),
    "sadyn eval small-akorn": ({"--n 1000": "--n 4"}, ""),
    "sadyn analyze small-itrsa": ({}, _ANALYZE_TINY),
    "sadyn train": ({"--preset small": "--preset tiny"}, "--tensorboard false"),
    "sadyn eval runs/itrsa": ({"--n 1000": "--n 6"}, ""),
    "sadyn reproduce all": (
        {"reproduce all": "reproduce claim1-energy", "--preset small": "--preset tiny"},
        "",
    ),
    "sadyn report": ({}, ""),
}


def fenced_block(text: str, marker: str, lang: str) -> str:
    """The first ```lang fenced block after ``marker``."""
    found = re.search(re.escape(marker) + r"\s*```" + lang + r"\n(.*?)```", text, re.S)
    assert found, f"README.md has no ```{lang} block after {marker}"
    return found.group(1)


def readme_commands() -> list[str]:
    block = fenced_block(README.read_text(encoding="utf-8"), "<!-- readme-commands -->", "bash")
    commands = []
    for line in block.splitlines():
        line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
        if line:
            commands.append(line)
    return commands


def shrink(command: str) -> list[str]:
    prefix = next((p for p in TINY if command.startswith(p)), None)
    assert prefix is not None, f"README command without a tiny-size rule in TINY: {command!r}"
    replace, extra = TINY[prefix]
    for old, new in replace.items():
        assert old in command, f"{command!r}: expected {old!r} (update TINY)"
        command = command.replace(old, new)
    argv = shlex.split(command)[1:] + shlex.split(extra)
    if argv[0] in ("demo", "train", "eval", "analyze", "reproduce"):
        argv += ["--threads", "1"]
    return argv + ([] if argv[0] == "report" else ["--quiet"])


def test_every_readme_command_has_a_rule_and_parses():
    from sadyn.cli import build_parser

    commands = readme_commands()
    assert len(commands) >= 8
    parser = build_parser()
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "sadyn"
        parser.parse_args(argv[1:])  # as written: flags and choices exist
        parser.parse_args(shrink(command))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Tiny ItrSA and AKOrN runs exported under the shipped names."""
    from sadyn.pretrained.export import export

    root = tmp_path_factory.mktemp("readme_pretrained")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, kind in (("small-itrsa", "itrsa"), ("small-akorn", "akorn")):
            run = root / f"run-{kind}"
            argv = ["train", "--preset", "tiny", "--model", kind, "--out", str(run)]
            assert main([*argv, "--tensorboard", "false", "--quiet"]) == 0
            export(run, name, out=root / "weights", trained_on="cpu (test)")
    finally:
        torch.set_num_threads(before)
    return root / "weights"


@pytest.mark.slow
def test_readme_commands_run_as_written_at_tiny_sizes(pretrained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SADYN_PRETRAINED_DIR", str(pretrained))
    monkeypatch.setenv("SADYN_DATA_DIR", str(tmp_path / "cache"))
    for command in readme_commands():
        argv = shrink(command)
        assert main(argv) == 0, f"{command!r} failed: {capsys.readouterr().err[-2000:]}"
    out = capsys.readouterr().out
    for path in ("data/satnet-train.csv", "data/satnet-test.csv", "data/rrn-test.csv"):
        assert (tmp_path / path).is_file(), path
    assert (tmp_path / "out/demo/report.html").is_file() and "report: " in out
    assert (tmp_path / "report.html").is_file()
    assert (tmp_path / "runs/itrsa/config.json").is_file()
    evals = sorted(p.name for p in (tmp_path / "out").glob("*/eval/eval_*.json"))
    pool = "royle" if "royle" in "".join(evals) else "fallback"
    assert evals == [
        f"eval_id+ood-{pool}_n6_K1_T16-32-64-128-256.json",
        f"eval_ood-{pool}_n4_K1_T16-32-64-128-256.json",
    ]
    # sadyn reproduce writes into the user's folder, not into the committed results/
    assert (tmp_path / "out" / "claims").is_dir()


def test_readme_tour_runs_as_written(capsys):
    code = fenced_block(README.read_text(encoding="utf-8"), "<!-- readme-tour -->", "python")
    exec(compile(code, "README.md (tour)", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 3  # Henon exponents, ||J||, the T=16 exponents (tensor reprs wrap)
    henon = [float(v) for v in re.findall(r"-?\d+\.\d+", lines[0])]
    # A 3,000-step QR estimate of Henon's lambda_1 scatters by sigma = 6e-3 around Sprott's
    # 0.419217 (std over 64 start points, measured); 5 sigma is a band no trajectory leaves
    # by chance. (A 0.01 band around the rounded 0.42 was about 1.5 sigma wide.) The sum is
    # ln 0.3 exactly at every step (det J = -0.3), up to the 4 printed decimals of each.
    assert henon[0] == pytest.approx(0.419217, abs=5 * 6e-3)
    assert henon[0] + henon[1] == pytest.approx(math.log(0.3), abs=2 * 0.5e-4)
    # seeded: the model part prints the same numbers on a second run
    imports = "".join(line + "\n" for line in code.splitlines() if line.startswith("import "))
    imports += "".join(
        line + "\n" for line in code.splitlines() if line.startswith("from sadyn.dynamics")
    )
    model_part = imports + code[code.index("from sadyn.models") :]
    exec(compile(model_part, "README.md (tour, model part)", "exec"), {})
    assert capsys.readouterr().out.splitlines() == lines[1:]


def test_readme_commands_write_outside_the_committed_results():
    """A README command run as written writes into the user's folders (out/, runs/, data/),
    never into the repository's committed results/."""
    for command in readme_commands():
        argv = command.split()
        for flag in ("--out",):
            if flag in argv:
                target = argv[argv.index(flag) + 1]
                assert not target.startswith("results"), command
        if argv[1] == "report":
            assert not argv[2].startswith("results"), command


def test_readme_states_one_demo_time():
    """The README states the demo's time one way (it once said about a minute, 2-5 min, 59 s
    and 4 minutes)."""
    text = README.read_text(encoding="utf-8")
    assert not re.findall(r"@[A-Z_]+@", text), "unfilled placeholder"
    demo_lines = [ln for ln in text.splitlines() if "demo" in ln and "--full-training" not in ln]
    times = {m for ln in demo_lines for m in re.findall(r"about (\d+) min", ln)}
    assert len(times) == 1, times

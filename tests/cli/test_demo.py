"""``sadyn demo`` at tiny sizes: with pretrained models (tiny runs exported under the shipped
names) and without them (the plain fallback)."""

import pytest
import torch

from sadyn.cli import main
from sadyn.results import read_results

FAST = ["--fast", "--n", "6", "--probe-n", "2", "--votes", "2", "--train-seconds", "3"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from sadyn.pretrained.export import export

    root = tmp_path_factory.mktemp("demo_weights")
    torch.set_num_threads(1)
    for name, kind in (("small-itrsa", "itrsa"), ("small-akorn", "akorn")):
        run = root / kind
        argv = ["train", "--preset", "tiny", "--model", kind, "--out", str(run), "-q"]
        assert main([*argv, "--tensorboard", "false"]) == 0
        export(run, name, out=root / "weights", trained_on="cpu (test)")
    return root / "weights"


@pytest.mark.slow
def test_demo_with_pretrained_models(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SADYN_PRETRAINED_DIR", str(weights))
    out = tmp_path / "demo"
    assert main(["demo", *FAST, "--out", str(out), "--threads", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "pretrained: small-itrsa (tiny preset, seed 0" in text
    # the tiny exports start from noise (init 'akorn'), so the demo votes with small-akorn
    assert "pretrained: small-akorn" in text and "small-akorn OOD, K=2 confidence vote" in text
    assert "trained now: the tiny preset" in text and "NOTE" not in text
    assert f"report: {(out / 'report.html').resolve()}" in text
    page = (out / "report.html").read_text()
    assert "Demo: small-itrsa (pretrained): board accuracy against the loop count T" in page
    assert "Demo: small-akorn (pretrained), confidence vote over K=2 restarts" in page
    assert "Demo: training the tiny preset now" in page
    assert page.count("data:image/png;base64") >= 5
    assert read_results(out / "analysis" / "results.json")["probes"]["lyapunov"]
    assert read_results(out / "eval-voting" / "results.json")["config"]["votes"] == 2
    # demo sections are not claims: no criterion flags; the OOD pool is named
    assert "FLAGGED" not in page and "OOD pool" in page
    # run again: the tiny run is reused and said so, not "trained now ... in 0.0s"
    assert main(["demo", *FAST, "--out", str(out), "--threads", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "reused: the tiny preset" in text and "trained now" not in text


@pytest.mark.slow
def test_demo_votes_with_small_vote_by_test_time_restarts(weights, tmp_path, monkeypatch, capsys):
    """With ``small-vote`` shipped (a Norm(C) start), the demo draws restarts at test time and
    votes with the verifier, halting each board at its first valid restart."""
    import shutil

    from sadyn.pretrained.export import export

    folder = tmp_path / "weights"
    shutil.copytree(weights, folder)
    run = tmp_path / "vote-run"
    argv = ["train", "--preset", "tiny", "--model", "itrsa", "--model.init", "cond"]
    assert main([*argv, "--out", str(run), "-q", "--tensorboard", "false"]) == 0
    export(run, "small-vote", out=folder, trained_on="cpu (test)")
    monkeypatch.setenv("SADYN_PRETRAINED_DIR", str(folder))
    out = tmp_path / "demo"
    assert main(["demo", *FAST, "--out", str(out), "--threads", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "small-vote OOD, K=2 verifier vote" in text
    config = read_results(out / "eval-voting" / "results.json")["config"]
    assert config["votes"] == 2 and config["restart_noise"] == 0.3
    assert config["halt"] == "any-valid" and config["anchor"] is True


def test_demo_does_not_vote_with_deterministic_starts(capsys):
    from sadyn.pretrained import available
    from sadyn.pretrained.demo import restarts_differ

    shipped = [name for name in ("small-itrsa", "small-akorn") if name in available()]
    if not shipped:
        pytest.skip("no shipped pretrained models")
    # both shipped presets start from Norm(C) without noise: K restarts are one trajectory
    assert not any(restarts_differ(name) for name in shipped)


@pytest.mark.slow
def test_demo_without_pretrained_models_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SADYN_PRETRAINED_DIR", str(tmp_path / "none"))
    out = tmp_path / "demo"
    assert main(["demo", *FAST, "--out", str(out), "--threads", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "NOTE: the pretrained weights" in text and "falling back" in text
    assert "voting: not run. No pretrained model" in text
    assert "tiny (trained now, fallback)" in text and (out / "report.html").is_file()


def test_a_finished_demo_run_is_reused_and_said_so(tmp_path):
    from sadyn.pretrained.demo import finished_run, trained_line, training_record
    from sadyn.training.loop import train
    from sadyn.training.presets import get_preset

    config = get_preset("tiny", tensorboard=False, eval_every=0, ckpt_every=0)
    run = tmp_path / "tiny-run"
    assert finished_run(run, config) is None  # nothing there yet
    first = train(config, run, progress=False)
    summary = finished_run(run, config)
    assert summary is not None and summary.step == first.step
    assert finished_run(run, config.replace(seed=1)) is None  # another config: not reused
    line = trained_line("the tiny preset", run, summary, None, "")
    assert line.startswith("reused: the tiny preset") and "trained now" not in line
    record = training_record(run, summary, None, "the tiny preset")
    assert "reused" in record["title"] and record["data"]["reused"] is True
    assert record["wall_time_s"] == summary.wall_time_s > 0


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("threads", [None, 2])
def test_the_demo_evaluates_and_probes_as_the_commands_do(tmp_path, fast, threads):
    """The demo's pipeline calls the library with the settings ``sadyn eval`` and ``sadyn
    analyze`` parse from the command lines the demo used to run (its stages were those
    commands, called with these options)."""
    from sadyn.cli import build_parser
    from sadyn.cli.analyze import settings_from as analyze_settings
    from sadyn.cli.eval import settings_from as eval_settings
    from sadyn.pretrained.demo import Demo, DemoSettings

    demo = Demo(DemoSettings(out=str(tmp_path), fast=fast, threads=threads, quiet=True), set())
    tail = (["--threads", str(threads)] if threads else []) + ["--quiet"]

    def parsed(argv: list[str]):
        return build_parser().parse_args([*argv, *tail])

    out = tmp_path / "eval-voting" / "results.json"
    # a Norm(C) start: restarts drawn at test time, the verifier vote, any-valid halting;
    # max(n // 5, 20) boards: 60 of n = 300, the floor 20 of n = 100 (--fast)
    argv = ["eval", "small-vote", "--data", "ood", "--n", "20" if fast else "60"]
    argv += ["--steps", "16,64,128"]
    argv += ["--out", str(out), "--batch-size", "500", "--votes", "16", "--vote", "verifier"]
    argv += ["--restart-noise", "0.3", "--anchor", "--halt", "any-valid"]
    assert demo.vote_settings("small-vote", noisy=False) == eval_settings(parsed(argv))
    # a start that draws noise: its own restarts, the confidence vote, n // 3 boards
    argv = ["eval", "small-akorn", "--data", "ood", "--n", "33" if fast else "100"]
    argv += ["--steps", "16,64", "--out", str(out), "--batch-size", "500", "--votes", "16"]
    argv += ["--vote", "confidence"]
    assert demo.vote_settings("small-akorn", noisy=True) == eval_settings(parsed(argv))

    out = tmp_path / "eval-itrsa" / "results.json"
    n = "100" if fast else "300"
    argv = ["eval", "small-itrsa", "--data", "id,ood", "--n", n, "--steps", "16,32,64,128"]
    argv += ["--out", str(out), "--batch-size", "500"]
    assert demo.scaling_settings("small-itrsa") == eval_settings(parsed(argv))

    argv = ["analyze", "small-itrsa", "--out", str(tmp_path / "analysis"), "--n", "4"]
    argv += ["--seed", "0", "--eig-samples", "1", "--eig-k", "16" if fast else "24"]
    argv += ["--k", "4" if fast else "8", "--qr-steps", "32", "--transient", "8"]
    argv += ["--ci-samples", "0", "--ci-every", "16", "--sens-n", "2", "--sens-warmup", "32"]
    argv += ["--sens-steps", "300" if fast else "500", "--scaling-steps", "16,32,64"]
    got = demo.probe_settings("small-itrsa")
    assert got == analyze_settings(parsed(argv))
    assert got.config() == analyze_settings(parsed(argv)).config()  # what results.json records

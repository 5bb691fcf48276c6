"""Pretrained models: export a run, load by name or path, verify the SHA-256, evaluate by name."""

import json

import pytest
import torch

from sadyn.cli import main
from sadyn.errors import CheckpointError
from sadyn.pretrained import available, load_pretrained, resolve_model
from sadyn.pretrained.export import export, match_preset
from sadyn.results import read_results


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    run = root / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(["train", "--preset", "tiny", "--out", str(run), "--tensorboard", "false", "-q"])
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    return root, run


@pytest.fixture()
def shipped(tiny_run, tmp_path, monkeypatch):
    _, run = tiny_run
    folder = tmp_path / "weights"
    manifest = export(run, "tiny-test", out=folder, trained_on="cpu (test)")
    monkeypatch.setenv("SADYN_PRETRAINED_DIR", str(folder))
    return folder, manifest, run


def test_export_writes_weights_manifest_and_provenance(shipped):
    folder, manifest, run = shipped
    info = json.loads(manifest.read_text())
    assert (folder / "tiny-test.safetensors").is_file()
    assert info["format"] == "sadyn.pretrained/1" and len(info["sha256"]) == 64
    prov = info["provenance"]
    assert prov["preset"] == "tiny" and prov["seed"] == 0 and prov["trained_on"] == "cpu (test)"
    assert prov["steps"] == json.loads((run / "summary.json").read_text())["step"]
    assert available(folder) == ["tiny-test"] == available()


def test_pretrained_equals_the_runs_ema_weights(shipped):
    _, manifest, run = shipped
    from sadyn.training import load_checkpoint

    ref, ref_config, _ = load_checkpoint(run)
    for spec in ("tiny-test", manifest, manifest.with_suffix(".safetensors")):
        model, config, meta = load_pretrained(spec)
        assert config == ref_config and meta["pretrained"] == "tiny-test"
        for (k, a), (k2, b) in zip(
            model.state_dict().items(), ref.state_dict().items(), strict=True
        ):
            assert k == k2 and torch.equal(a, b)
    # resolve_model: a name, and a run folder (which wins over names)
    assert resolve_model("tiny-test")[2]["pretrained"] == "tiny-test"
    assert "pretrained" not in resolve_model(run)[2]


def test_a_modified_weights_file_is_refused(shipped):
    folder, _, _ = shipped
    weights = folder / "tiny-test.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"SHA-256 .* does not match"):
        load_pretrained("tiny-test")
    with pytest.raises(CheckpointError, match="not a pretrained model name"):
        load_pretrained("no-such-model")


def test_eval_by_name_names_its_output_and_records_the_pool(shipped, tmp_path, capsys, monkeypatch):
    from sadyn.sudoku.datasets import POOL_LABELS

    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    argv = ["eval", "tiny-test", "--data", "id,ood", "--n", "6", "--steps", "2,4", "-q"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    made = sorted((tmp_path / "out" / "tiny-test" / "eval").glob("*.json"))
    assert len(made) == 1
    out = made[0]
    record = read_results(out)
    ood = record["data"]["ood"]
    pool = "fallback" if ood["pool_sha256"] == "fallback" else "royle"
    # the file name holds what changes the numbers: sets with the pool, n, K, T grid
    assert out.name == f"eval_id+ood-{pool}_n6_K1_T2-4.json"
    assert record["config"]["data_seed"] == 0 and ood["data_seed"] == 0
    assert ood["pool_sha256"] == "fallback" or len(ood["pool_sha256"]) == 64
    assert record["data"]["id"]["pool_sha256"] is None  # SATNet-style: no pool
    # the pool is named where the numbers are: terminal, results file, figure legend
    label = POOL_LABELS[pool]
    assert ood["pool"] == label and record["config"]["pools"] == {"ood": label}
    assert f"ood: puzzles from the {label}" in printed
    legends = [s["label"] for s in record["figures"]["accuracy_vs_loops"]["series"]]
    assert any(lab.startswith("ood [") for lab in legends)
    # a pretrained model is recorded by name, not by the path of the installation
    assert record["config"]["checkpoint"] == "pretrained:tiny-test"
    # another T grid, n or seed goes to another file; the first is kept
    assert main([*argv[:-3], "--steps", "4", "-q"]) == 0
    assert main([*argv[:4], "--n", "5", "--steps", "2,4", "-q"]) == 0
    assert main([*argv, "--seed", "1"]) == 0
    names = sorted(p.name for p in out.parent.glob("*.json"))
    assert names == sorted(
        [
            out.name,
            f"eval_id+ood-{pool}_n6_K1_T4.json",
            f"eval_id+ood-{pool}_n5_K1_T2-4.json",
            f"eval_id+ood-{pool}_n6_K1_T2-4_seed1.json",
        ]
    )
    # an explicit --out holding an evaluation with other settings is not overwritten
    capsys.readouterr()
    assert main([*argv[:4], "--n", "5", "--steps", "2,4", "--out", str(out), "-q"]) == 2
    assert "--force" in capsys.readouterr().err and read_results(out)["config"]["n"] == 6
    assert main([*argv[:4], "--n", "5", "--steps", "2,4", "--out", str(out), "--force"]) == 0
    assert read_results(out)["config"]["n"] == 5


def test_match_preset():
    from sadyn.training.presets import get_preset

    assert match_preset(get_preset("small", seed=3, threads=1).to_dict()) == "small"
    assert match_preset(get_preset("small", lr=1e-4).to_dict()) is None


def test_train_resume_without_a_run_is_an_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "none"), "--resume", "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--out", str(tmp_path / "empty"), "--resume", "-q"]) == 2
    err = capsys.readouterr().err
    assert "no resumable run" in err and "config.json" in err
    assert not (tmp_path / "empty" / "config.json").exists()  # nothing was started

"""Sweep grids: preset contents, Bernoulli/QCBM pairing, trial ids, overrides, validation before launch."""
from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps import presets as P
from sweeps.driver import main as sweep_main
from sweeps.trainable import make_trial_config, split_config

ROOT = Path(__file__).resolve().parent.parent


def _by_model(trials):
    return {m: [t for t in trials if t["model"] == m] for m in P.MODELS}


def test_smoke_grid_covers_both_models_two_n_sizes_update_periods_and_seeds():
    trials = P.expand(P.get_preset("smoke", "ferrite"))
    q, b = _by_model(trials)["qcbm"], _by_model(trials)["bernoulli"]
    assert len({t["n"] for t in trials}) >= 2
    assert len({t["train_size"] for t in trials}) >= 2
    assert len({t["seed"] for t in trials}) >= 2
    assert len({t["update_every"] for t in q}) >= 2
    assert len(q) == 2 * 2 * 2 * 2 and len(b) == 2 * 2 * 2


def test_bernoulli_trial_runs_once_per_shared_setting_and_pairs_with_every_qcbm_setting():
    trials = P.expand(P.get_preset("smoke", "bainite"))
    groups = _by_model(trials)
    assert all(not (set(t) & set(P.QCBM_ONLY)) for t in groups["bernoulli"])
    shared = lambda t: (t["n"], t["train_size"], t["seed"])  # noqa: E731
    bern_keys = [shared(t) for t in groups["bernoulli"]]
    assert len(bern_keys) == len(set(bern_keys))
    # every QCBM trial has exactly one Bernoulli partner with the same seed (same init weights, data order)
    for q in groups["qcbm"]:
        assert bern_keys.count(shared(q)) == 1
    # launch order puts the partners side by side
    first = trials[:3]
    assert {t["model"] for t in first} == {"qcbm", "bernoulli"} and len({shared(t) for t in first}) == 1


def test_trial_ids_are_readable_unique_deterministic_and_ignore_bookkeeping():
    trials = P.expand(P.get_preset("smoke", "ferrite"))
    ids = [t["_trial_id"] for t in trials]
    assert len(set(ids)) == len(ids)
    assert ids == [t["_trial_id"] for t in P.expand(P.get_preset("smoke", "ferrite"))]
    q = next(t for t in trials if t["model"] == "qcbm")
    assert q["_trial_id"].startswith(f"ferrite-qcbm-n{q['n']}-ts{q['train_size']}-ue{q['update_every']}-s{q['seed']}-")
    cfg = {k: v for k, v in q.items() if not k.startswith("_")}
    assert P.trial_id({**cfg, "device": "cuda", "checkpoint_every": 7}) == q["_trial_id"]
    assert P.trial_id({**cfg, "lr_g": 3e-4}) != q["_trial_id"]


@pytest.mark.parametrize("phase,update_every", [("ferrite", 30), ("bainite", 10)])
def test_paper_preset_is_the_study_of_spec_section_5(phase, update_every):
    trials = P.expand(P.get_preset("paper", phase))
    groups = _by_model(trials)
    assert {t["n"] for t in trials} == {4, 6, 8, 10, 12}
    assert {t["train_size"] for t in trials} == {9000, 3000}
    assert {t["seed"] for t in trials} == set(range(5))
    assert {t["epochs"] for t in trials} == {4000}
    assert {t["update_every"] for t in groups["qcbm"]} == {update_every}
    assert {t["qcbm_epochs"] for t in groups["qcbm"]} == {100}
    assert len(groups["qcbm"]) == len(groups["bernoulli"]) == 5 * 2 * 5


@pytest.mark.parametrize("name,phase", list(itertools.product(P.PRESETS, P.PHASES)))
def test_every_preset_trial_is_a_valid_trial_config(name, phase):
    for t in P.expand(P.get_preset(name, phase)):
        cfg = make_trial_config(t)  # raises ValueError on any bad field
        assert cfg.phase == phase and cfg.model == t["model"] and cfg.seed == t["seed"]


def test_set_overrides_fix_or_replace_axes_and_reach_every_trial():
    over = P.parse_set(["n=4", "seed=[3]", "lr_g=2e-4", "models=qcbm", "update_every=[5,7]"])
    assert over == {"n": 4, "seed": [3], "lr_g": 2e-4, "models": "qcbm", "update_every": [5, 7]}
    trials = P.expand(P.apply_overrides(P.get_preset("smoke", "ferrite"), over))
    assert {t["model"] for t in trials} == {"qcbm"}
    assert {(t["n"], t["seed"], t["lr_g"]) for t in trials} == {(4, 3, 2e-4)}
    assert sorted({t["update_every"] for t in trials}) == [5, 7]
    with pytest.raises(ValueError, match="key=value"):
        P.parse_set(["lr_g"])
    with pytest.raises(ValueError, match="sweeps/bainite.py"):
        P.apply_overrides(P.get_preset("smoke", "ferrite"), {"phase": "bainite"})


def test_base_config_file_from_tune_is_applied(tmp_path):
    f = tmp_path / "best.yaml"
    f.write_text("config:\n  lr_g: 0.0003\n  width: 3\nmetric: mmd_last\nvalue: 1.0\n")
    assert P.load_base_config(f) == {"lr_g": 0.0003, "width": 3}
    with pytest.raises(FileNotFoundError):
        P.load_base_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        P.load_base_config(tmp_path / "bad.yaml")


def test_split_config_strips_sweep_keys_from_nested_and_flat_configs():
    fields, private = split_config({"trial": {"n": 2, "_trial_id": "x"}, "_crash_at_epoch": 2})
    assert fields == {"n": 2} and private == {"_trial_id": "x", "_crash_at_epoch": 2}


def test_invalid_config_is_rejected_once_with_its_reason_before_anything_launches(tmp_path, capsys):
    rc = sweep_main("ferrite", ["--storage", str(tmp_path), "--set", "batch_size=64"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("sweeps: error: ") and "batch_size" in err and "nothing was launched" in err
    assert not any(tmp_path.iterdir())  # no run directory, no Ray
    assert sweep_main("ferrite", ["--storage", str(tmp_path), "--set", "bogus_field=1"]) == 2
    assert "bogus_field" in capsys.readouterr().err


def test_resume_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert sweep_main("bainite", ["--storage", str(tmp_path), "--resume"]) == 2
    assert "no run bainite-smoke-*" in capsys.readouterr().err


def test_entry_script_runs_from_the_repo_root(tmp_path):
    out = subprocess.run([sys.executable, "sweeps/bainite.py", "--preset", "paper", "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "preset paper (bainite): 100 trials (50 qcbm, 50 bernoulli)" in out.stdout
    assert "bainite-qcbm-n4-ts9000-ue10-s0-" in out.stdout


def test_fractional_gpus_pack_trials_and_switch_trials_to_cuda():
    from sweeps.driver import build_parser, build_preset
    from sweeps.trainable import make_trainable

    args = build_parser("ferrite").parse_args(["--gpus-per-trial", "0.25", "--cpus-per-trial", "2"])
    trials = P.expand(build_preset("ferrite", args))
    assert {t["device"] for t in trials} == {"cuda"}
    cpu_ids = {t["_trial_id"] for t in P.expand(P.get_preset("smoke", "ferrite"))}
    assert {t["_trial_id"] for t in trials} == cpu_ids  # same trials, other hardware: resumable
    request = make_trainable("/tmp/unused", cpus=2, gpus=0.25)._resources
    assert request.required_resources == {"CPU": 2.0, "GPU": 0.25}

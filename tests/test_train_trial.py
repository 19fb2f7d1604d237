"""run_trial end to end on tiny configs: result files, schedule, call counts, determinism, pairing, resume, NaN."""
import copy
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch

import qgan.models as models
import qgan.quantum as qq
import qgan.train as train
import qgan.trial_state as trial_state
from qgan.cli import main as cli_main
from qgan.train import RECORD_COLUMNS, TrialConfig, run_trial


@pytest.fixture()
def data_path(make_dataset):
    return make_dataset(120, seed=0)


def _cfg(data_path, **kw):
    base = dict(n=4, train_size=16, eval_size=8, batch_size=8, width=4, epochs=3, update_every=1, qcbm_epochs=2,
                qcbm_samples=64, spsa_iterations=3, data_source=data_path, checkpoint_every=100, n_samples_saved=0)
    base.update(kw)
    return TrialConfig.from_dict(base)


def _frame(records):
    return pd.DataFrame(records).drop(columns=["seconds"])


@pytest.mark.parametrize("optimizer, per_update", [("fd", lambda p, k: 2 * p), ("spsa", lambda p, k: 2 * k + 1),
                                                   ("exact", lambda p, k: 1)])
def test_trial_writes_result_files_with_exact_schedule_and_call_counts(data_path, tmp_path, optimizer, per_update):
    cfg = _cfg(data_path, qcbm_optimizer=optimizer, epochs=6, update_every=2, qcbm_epochs=5, n_samples_saved=2)
    out = tmp_path / "trial"
    res = run_trial(cfg, out_dir=str(out), checkpoint=str(out / "ck"))
    for name in ("config.json", "epochs.parquet", "summary.json", "samples.npz", "samples.png", "ck/checkpoint.pt"):
        assert (out / name).exists(), name
    df = pd.read_parquet(out / "epochs.parquet")
    assert tuple(df.columns) == RECORD_COLUMNS
    assert df["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert df.loc[df.qcbm_updated, "epoch"].tolist() == [2, 4]  # K, 2K <= qcbm_epochs; none after
    assert df.loc[df.qcbm_updated, "qcbm_loss"].notna().all() and df.loc[~df.qcbm_updated, "qcbm_loss"].isna().all()
    assert df["mmd"].notna().all() and (df["mmd"] > 0).all()
    p = qq.Ansatz(4).num_params
    calls = np.diff(np.concatenate([[0], df["circuit_calls"].to_numpy()]))
    # every epoch: one circuit run for the training latents and one for the evaluation latents
    want = [2 + (per_update(p, 3) if e in (2, 4) else 0) for e in range(1, 7)]
    assert calls.tolist() == want
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["failure_reason"] is None
    assert summary["epochs_completed"] == 6 and summary["circuit_calls"] == int(df["circuit_calls"].iloc[-1])
    assert summary["mmd_last100"] == pytest.approx(df["mmd"].mean())
    assert summary["mmd_final"] == pytest.approx(df["mmd"].iloc[-1])
    assert 0 < summary["mmd_floor"] < summary["mmd_final"]
    assert len(summary["theta"]) == p and summary["theta"] != qq.Ansatz(4).uniform_start().tolist()
    config = json.loads((out / "config.json").read_text())
    assert config["trial_id"] == "trial" and TrialConfig.from_dict(
        {k: v for k, v in config.items() if k != "trial_id"}) == cfg
    with np.load(out / "samples.npz") as z:
        assert z["real"].shape == z["generated"].shape == (2, 5, 60, 60) and z["generated"].dtype == np.uint8
    assert res.records[-1]["epoch"] == 6


def test_same_config_and_seed_give_identical_epochs(data_path, tmp_path):
    cfg = _cfg(data_path)
    a = run_trial(cfg, out_dir=str(tmp_path / "a"))
    b = run_trial(cfg, out_dir=str(tmp_path / "b"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "epochs.parquet").drop(columns=["seconds"]),
                                  pd.read_parquet(tmp_path / "b" / "epochs.parquet").drop(columns=["seconds"]))
    c = run_trial(_cfg(data_path, epochs=1, seed=1))
    assert not _frame(a.records[:1]).equals(_frame(c.records))
    assert a.summary["theta"] == b.summary["theta"]


def test_bernoulli_and_qcbm_with_the_same_seed_start_from_identical_networks_and_data_order(data_path, tmp_path,
                                                                                         monkeypatch):
    built = []
    orig = trial_state.build_models

    def capture(*args, **kwargs):
        g, d = orig(*args, **kwargs)
        built.append((copy.deepcopy(g.state_dict()), copy.deepcopy(d.state_dict())))
        return g, d

    monkeypatch.setattr(trial_state, "build_models", capture)
    perms = []
    orig_randperm = torch.randperm

    def capture_perm(*args, **kwargs):
        out = orig_randperm(*args, **kwargs)
        perms.append(out.clone())
        return out

    monkeypatch.setattr(train.torch, "randperm", capture_perm)
    run_trial(_cfg(data_path, epochs=2, model="qcbm"))
    run_trial(_cfg(data_path, epochs=2, model="bernoulli"))
    run_trial(_cfg(data_path, epochs=2, model="bernoulli", seed=3))
    (gq, dq), (gb, db), (g3, _) = built
    for a, b in ((gq, gb), (dq, db)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(gq[k], g3[k]) for k in gq)
    assert len(perms) == 6 and all(torch.equal(perms[i], perms[i + 2]) for i in range(2))
    assert not torch.equal(perms[0], perms[4])


def test_killed_after_epoch_3_and_resumed_equals_uninterrupted(data_path, tmp_path):
    cfg = _cfg(data_path, epochs=5, update_every=2, qcbm_epochs=4, qcbm_optimizer="spsa", spsa_calibrate=True,
               checkpoint_every=1)
    full = run_trial(cfg, checkpoint=str(tmp_path / "full"))

    class Killed(Exception):
        pass

    def kill_after_3(record, ck):
        if record["epoch"] == 3:
            assert ck == str(tmp_path / "part")
            raise Killed

    with pytest.raises(Killed):
        run_trial(cfg, checkpoint=str(tmp_path / "part"), on_epoch=kill_after_3, out_dir=str(tmp_path / "out"))
    seen = []
    resumed = run_trial(cfg, checkpoint=str(tmp_path / "part"), out_dir=str(tmp_path / "out"),
                        on_epoch=lambda r, ck: seen.append(r["epoch"]))
    assert seen == [4, 5]  # epochs 1-3 were not redone
    pd.testing.assert_frame_equal(_frame(resumed.records), _frame(full.records))
    assert resumed.summary["theta"] == full.summary["theta"]
    assert resumed.summary["circuit_calls"] == full.summary["circuit_calls"]
    on_disk = pd.read_parquet(tmp_path / "out" / "epochs.parquet").drop(columns=["seconds"])
    pd.testing.assert_frame_equal(on_disk, _frame(full.records))
    with pytest.raises(ValueError, match="different trial"):
        run_trial(_cfg(data_path, epochs=5, update_every=2, qcbm_epochs=4, qcbm_optimizer="fd"),
                  checkpoint=str(tmp_path / "part"))


def test_nan_loss_ends_the_trial_as_failed_within_one_epoch(data_path, tmp_path, monkeypatch):
    orig = models.critic_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, w, gp = orig(*args, **kwargs)
        if calls["n"] == 3:  # first critic step of epoch 2 (2 steps per epoch)
            loss = loss * float("nan")
        return loss, w, gp

    monkeypatch.setattr(models, "critic_loss", poisoned)  # what critic_step calls
    out = tmp_path / "nan"
    res = run_trial(_cfg(data_path, epochs=4, checkpoint_every=1), out_dir=str(out), checkpoint=str(out / "ck"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" == res.summary["status"]
    assert summary["epochs_completed"] == 2
    assert "loss_d" in summary["failure_reason"] and "epoch 2" in summary["failure_reason"]
    assert len(pd.read_parquet(out / "epochs.parquet")) == 2
    assert math.isnan(res.records[-1]["loss_d"])


def test_remote_backend_uses_a_latent_pool_and_only_spsa_calls(data_path):
    class FakeQPU(qq.ExactBackend):
        name = "fake-qpu"
        fresh_latents = False  # samples like remote hardware: latents from a pool

    bk = FakeQPU()
    bk.circuit_calls = 100  # a shared client that already ran other trials' circuits
    res = run_trial(_cfg(data_path, qcbm_optimizer="spsa", epochs=4, update_every=2, qcbm_epochs=4), backend=bk)
    calls = [r["circuit_calls"] for r in res.records]
    # 1 initial pool run; per SPSA cycle exactly 2K + 1 = 7 runs whose final one refills the pool; nothing else
    assert calls == [1, 8, 8, 15]
    assert bk.circuit_calls == 115 and res.summary["circuit_calls"] == 15


def test_qgan_train_cli_writes_files_and_refuses_to_overwrite(data_path, tmp_path, capsys):
    out = str(tmp_path / "cli")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"n: 3\ntrain_size: 16\neval_size: 8\nbatch_size: 8\nwidth: 4\nn_samples_saved: 2\n"
                        f"data_source: {data_path}\n")
    args = ["train", "--config", str(cfg_file), "--set", "epochs=2", "--set", "update_every=1",
            "--set", "qcbm_samples=32", "--out", out, "--quiet"]
    assert cli_main(args) == 0
    for name in ("config.json", "epochs.parquet", "summary.json", "samples.png", "samples.npz",
                 "checkpoint/checkpoint.pt"):
        assert os.path.exists(os.path.join(out, name)), name
    assert "completed: 2 epochs" in capsys.readouterr().out
    assert cli_main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli_main(["train", "--out", out, "--resume", "--set", "epochs=3", "--quiet"]) == 0
    assert len(pd.read_parquet(os.path.join(out, "epochs.parquet"))) == 3
    assert cli_main(["train", "--set", "lambda=3", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "unknown config key(s): lambda" in capsys.readouterr().err

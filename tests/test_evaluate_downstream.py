"""`qgan evaluate`: every measure for every completed trial of a run; adding copies of the scarce images (more
of the same, better class balance) gains nothing beyond seed noise; pure noise scores worse than held-out real
images on every measure."""
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_two_phase_dataset
from qgan import results
from qgan.evaluate import PRESETS, EvalSettings, Evaluator, load_real


@pytest.fixture(scope="module")
def two_phase(tmp_path_factory):
    return write_two_phase_dataset(tmp_path_factory.mktemp("data") / "two.npz", 400, seed=1)


@pytest.fixture(scope="module")
def evaluator(two_phase, tmp_path_factory):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    s = dataclasses.replace(EvalSettings(**PRESETS["quick"]), classifier_seeds=6)
    yield Evaluator(load_real(two_phase, 0, s, []), s, tmp_path_factory.mktemp("cache"))
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def held_out(two_phase, evaluator):
    """Real ferrite images (n_generated, 5, 60, 60) of the file that the evaluator's split did not take."""
    from qgan.data import load_dataset

    ds = load_dataset(two_phase)
    taken = set(evaluator.real.split["file_indices"]["ferrite"])
    fresh = [i for i in np.flatnonzero(ds.labels == "ferrite") if i not in taken]
    return ds.images[fresh[: evaluator.s.n_generated]]


def _gains(rows):
    df = pd.DataFrame(rows)
    return df[(df["augmentation"] == "gain") & (df["measure"] == "accuracy")]["value"].to_numpy()


def test_copies_of_the_scarce_images_gain_nothing_beyond_seed_noise(evaluator):
    rows = pd.DataFrame(evaluator.augmentation("ferrite", lambda scarce: np.concatenate([scarce] * 3)))
    assert rows[rows["augmentation"] == "none"]["value"].mean() < 0.9   # the premise: real-only is not at ceiling
    copies = _gains(rows.to_dict("records"))
    se = copies.std(ddof=1) / np.sqrt(len(copies))
    assert se > 0 and abs(copies.mean()) <= 2.5 * se + 0.01, (copies.mean(), se)


def test_pure_noise_scores_worse_than_held_out_real_images_on_every_measure(evaluator, held_out):
    noise = np.random.default_rng(5).integers(0, 256, held_out.shape, dtype=np.uint8)

    def scores(images):
        df = pd.DataFrame(evaluator.measure("ferrite", images))
        df = df[df["augmentation"] != "none"]            # the real-only baseline does not see the images
        return df.groupby(["measure", "augmentation"])["value"].mean()

    real, fake = scores(held_out), scores(noise)
    assert set(m for m, _ in real.index) == set(results.DOWNSTREAM_MEASURES)
    worse = {}
    for (measure, aug), v in real.items():
        higher = results.DOWNSTREAM_MEASURES[measure][1]
        worse[(measure, aug)] = fake[(measure, aug)] < v if higher else fake[(measure, aug)] > v
    assert all(worse.values()), {k: (real[k], fake[k]) for k, ok in worse.items() if not ok}


def _tiny_run(run, data, monkeypatch):
    from qgan.train import run_trial

    monkeypatch.setenv("QGAN_CACHE_DIR", str(run.parent / "cache"))
    base = dict(n=3, train_size=16, eval_size=8, batch_size=8, width=4, epochs=2, update_every=1, qcbm_epochs=2,
                qcbm_samples=32, data_source=data, n_samples_saved=0, checkpoint_every=100, seed=0)
    for model in ("bernoulli", "product", "qcbm"):
        tid = f"{model}-s0"
        folder = run / "trials" / tid
        run_trial({**base, "model": model}, out_dir=folder, checkpoint=folder / "checkpoint", trial_id=tid)
    (run / "trials" / "left-out").mkdir()
    (run / "trials" / "left-out" / "config.json").write_text(json.dumps({**base, "model": "qcbm"}))
    (run / "trials" / "left-out" / "summary.json").write_text(json.dumps({"status": "running"}))
    return base


def test_evaluate_on_a_tiny_run_writes_every_measure_for_every_completed_trial(tmp_path, monkeypatch):
    from qgan.cli import main
    from qgan.data import load_dataset
    from qgan.data.dataset import shuffled_phase_indices

    data = write_two_phase_dataset(tmp_path / "two.npz", 300, seed=2)
    run = tmp_path / "run"
    base = _tiny_run(run, data, monkeypatch)
    t0 = time.perf_counter()
    assert main(["evaluate", str(run), "--quick", "--quiet"]) == 0
    assert time.perf_counter() - t0 < 60
    df = pd.read_parquet(run / "downstream.parquet")
    assert tuple(df.columns) == results.DOWNSTREAM_COLUMNS
    floor = df[df["model"] == results.REAL_FLOOR_MODEL]
    df = df[df["model"] != results.REAL_FLOOR_MODEL]
    assert sorted(df["trial_id"].unique()) == ["bernoulli-s0", "product-s0", "qcbm-s0"]
    assert set(floor["measure"]) == set(results.DOWNSTREAM_MEASURES) and set(floor["phase"]) == {"ferrite"}
    fd = lambda d: d[d["measure"] == "frechet_distance"]["value"]  # noqa: E731
    assert fd(floor).max() < fd(df).min()     # 2-epoch generators lie far above the real-vs-real floor
    s = EvalSettings(**PRESETS["quick"])
    for tid, g in df.groupby("trial_id"):
        assert set(g["measure"]) == set(results.DOWNSTREAM_MEASURES), tid
        aug = g[g["family"] == "augmentation"]
        assert len(aug) == 2 * len(s.scarce_sizes) * s.classifier_seeds * 3
        assert g["value"].notna().all()
    # paired: the real-only classifiers are the same for every arm
    none = df[df["augmentation"] == "none"].pivot_table(index=["measure", "scarce_size", "classifier_seed"],
                                                        columns="model", values="value")
    assert (none.nunique(axis=1) == 1).all()
    # the split: file images no trial trained or evaluated on
    meta = json.loads((run / "downstream.json").read_text())
    used = shuffled_phase_indices(load_dataset(data).labels, "ferrite", 0)[: base["train_size"] + 2 * base["eval_size"]]
    assert not set(meta["split"][0]["file_indices"]["ferrite"]) & set(used.tolist())
    assert [k["trial"] for k in meta["skipped"]] == ["trials/left-out"]  # no trial_id: its folder, as collect names it


def test_evaluate_of_a_missing_run_folder_is_one_line_and_exit_2(tmp_path, capsys):
    from qgan.cli import main

    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qgan: error: run directory") and "nope" in err[0]


@pytest.mark.parametrize("flags, says", [(["--scarce-sizes", "10,x"], "--scarce-sizes expects"),
                                         (["--scarce-sizes", "0"], "scarce sizes must be positive"),
                                         (["--classifier-seeds", "0"], "classifier-seeds must be >= 1"),
                                         (["--threads", "0"], "--threads must be >= 1")])
def test_bad_evaluate_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, says):
    from qgan.cli import main

    assert main(["evaluate", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err


def test_a_trial_whose_checkpoint_belongs_to_another_trial_is_skipped_with_its_reason(tmp_path, monkeypatch):
    from qgan.evaluate import evaluate_run
    from qgan.train import run_trial

    monkeypatch.setenv("QGAN_CACHE_DIR", str(tmp_path / "cache"))
    data = write_two_phase_dataset(tmp_path / "two.npz", 300, seed=2)
    base = dict(n=3, train_size=16, eval_size=8, batch_size=8, width=4, epochs=1, data_source=data,
                n_samples_saved=0, checkpoint_every=100, model="bernoulli")
    for seed in (0, 1):
        run_trial({**base, "seed": seed}, out_dir=tmp_path / "run" / f"s{seed}",
                  checkpoint=tmp_path / "run" / f"s{seed}" / "checkpoint", trial_id=f"s{seed}")
    cfg = json.loads((tmp_path / "run" / "s1" / "config.json").read_text())
    (tmp_path / "run" / "s1" / "config.json").write_text(json.dumps({**cfg, "seed": 5}))
    s = EvalSettings(**{**PRESETS["quick"], "scarce_sizes": (10,), "classifier_seeds": 1, "classifier_steps": 5})
    res = evaluate_run(tmp_path / "run", s, progress=False)
    meta = json.loads((tmp_path / "run" / "downstream.json").read_text())
    assert res["trials"] == 1 and meta["trials"] == ["s0"]
    assert meta["skipped"][0]["trial"] == "s1" and "different trial" in meta["skipped"][0]["reason"]


def test_the_qgan_parser_with_evaluate_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from qgan.cli import build_parser; build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])

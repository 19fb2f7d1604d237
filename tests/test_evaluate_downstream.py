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


@pytest.fixture(scope="module")
def imbalance_case(tmp_path_factory):
    """(data, settings) where class balance matters: 5 or 10 scarce ferrite images against 50 bainite, a task a
    100-step classifier learns to ~0.75, so a sampler that follows the class sizes is biased by them."""
    data = write_two_phase_dataset(tmp_path_factory.mktemp("imb") / "two.npz", 300, seed=1, kam_shift=24.0)
    s = dataclasses.replace(EvalSettings(**PRESETS["quick"]), scarce_sizes=(5, 10), other_size=50,
                            classifier_seeds=6, classifier_steps=100)
    return data, s, tmp_path_factory.mktemp("imb-cache")


def _copies_gain(case, balanced: bool):
    """(real-only accuracy, copies' gains (seeds x sizes,)): the scarce images repeated up to the other class's
    size added as the "generated" images."""
    data, s, cache = case
    s = dataclasses.replace(s, balanced=balanced)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ev = Evaluator(load_real(data, 0, s, []), s, cache)
        rows = ev.augmentation("ferrite", lambda scarce: np.concatenate([scarce] * (s.other_size // len(scarce) - 1)))
    finally:
        torch.set_num_threads(previous)
    df = pd.DataFrame(rows)
    return df[(df["augmentation"] == "none") & (df["measure"] == "accuracy")]["value"].mean(), _gains(rows)


def test_copies_of_the_scarce_images_gain_nothing_beyond_seed_noise(imbalance_case):
    none, copies = _copies_gain(imbalance_case, balanced=True)
    assert 0.6 < none < 0.9          # the premise: the real-only classifier learned, and is not at ceiling
    se = copies.std(ddof=1) / np.sqrt(len(copies))
    assert se > 0 and abs(copies.mean()) <= 2.5 * se + 0.01, (copies.mean(), se)


def test_the_copies_check_catches_a_sampler_that_follows_the_class_sizes(imbalance_case):
    """The check above can fail: with batches drawn from the pooled images, the same copies (better balance,
    no new information) raise the accuracy far beyond seed noise."""
    _, copies = _copies_gain(imbalance_case, balanced=False)
    se = copies.std(ddof=1) / np.sqrt(len(copies))
    assert copies.mean() > max(3 * se, 0.05), (copies.mean(), se)


def test_train_classifier_balanced_batches_hold_half_of_each_class_and_pooled_ones_follow_the_sizes(monkeypatch):
    from qgan.evaluate import PhaseNet, make_generator, train_classifier

    seen, forward = [], PhaseNet.forward

    def spy(self, x):
        seen.append(x[:, 0, 0, 0].clone())              # 0 for a class-0 image, 1 for a class-1 image
        return forward(self, x)

    monkeypatch.setattr(PhaseNet, "forward", spy)
    a = np.zeros((4, 1, 60, 60), np.uint8)
    b = np.full((36, 1, 60, 60), 255, np.uint8)
    share = {}
    for balanced in (True, False):
        seen.clear()
        net = train_classifier(a, b, 50, 16, 1e-3, 2, make_generator(0), balanced=balanced)
        assert net.body[0].in_channels == 1
        share[balanced] = float(torch.cat(seen).mean())  # share of class-1 images over all batches
    assert share[True] == 0.5 and abs(share[False] - 0.9) < 0.03, share


def test_the_augmentation_classifier_sees_only_the_chosen_channels(two_phase, tmp_path):
    """The fixture's phases differ only in KAM: a classifier on KAM learns them, one on the grain mask cannot."""
    s = dataclasses.replace(EvalSettings(**PRESETS["quick"]), scarce_sizes=(25,), classifier_seeds=2)
    acc = {}
    for ch in ("kam", "mask"):
        ev = Evaluator(load_real(two_phase, 0, s, []), dataclasses.replace(s, channels=(ch,)), tmp_path)
        assert ev.test_x.shape[1] == 1
        df = pd.DataFrame(ev.augmentation("ferrite", ev.real.roles["ferrite"]["floor"]))
        acc[ch] = df[(df["augmentation"] == "none") & (df["measure"] == "accuracy")]["value"].mean()
    assert acc["kam"] > 0.58 and abs(acc["mask"] - 0.5) < 0.06, acc


def _headroom_rows(real_only, real_gains, size=10):
    rows = []
    for cs, g in enumerate(real_gains):
        for model, gain in (("real", g), ("qcbm", 0.0)):
            for aug, v in (("none", real_only), ("generated", real_only + gain), ("gain", gain)):
                rows.append(dict(trial_id=model, model=model, phase="ferrite", n=0, seed=-1, family="augmentation",
                                 measure="accuracy", scarce_size=size, augmentation=aug, classifier_seed=cs, value=v))
    return rows


def test_headroom_is_informative_only_where_new_real_images_gain_beyond_seed_noise():
    frame = results.downstream_frame(_headroom_rows(1.0, [0.0, 0.0, 0.0], 10)
                                     + _headroom_rows(0.7, [0.10, 0.12, 0.08], 25)
                                     + _headroom_rows(0.7, [0.10, -0.08, 0.01], 50))
    h = results.augmentation_headroom(frame)
    assert tuple(h.columns) == results.HEADROOM_COLUMNS
    h = h.set_index("scarce_size")
    assert h["verdict"].to_dict() == {10: "at ceiling", 25: "informative", 50: "no headroom"}
    assert h.loc[25, "real_gain"] == pytest.approx(0.10) and h.loc[25, "real_gain_low"] > 0
    assert h.loc[25, "real_only"] == pytest.approx(0.7) and h.loc[25, "classifier_seeds"] == 3


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
    assert {(h["scarce_size"], h["measure"]) for h in meta["headroom"]} == {
        (size, m) for size in s.scarce_sizes for m in ("accuracy", "balanced_f1")}
    assert {h["verdict"] for h in meta["headroom"]} <= set(results.HEADROOM_VERDICTS)


def test_evaluate_of_a_missing_run_folder_is_one_line_and_exit_2(tmp_path, capsys):
    from qgan.cli import main

    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qgan: error: run directory") and "nope" in err[0]


@pytest.mark.parametrize("flags, says", [(["--scarce-sizes", "10,x"], "--scarce-sizes expects"),
                                         (["--scarce-sizes", "0"], "scarce sizes must be positive"),
                                         (["--classifier-seeds", "0"], "classifier-seeds must be >= 1"),
                                         (["--threads", "0"], "--threads must be >= 1"),
                                         (["--channels", "iq,rgb"], "channels must be distinct names among")])
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

"""`python -m analysis` reads qgan evaluate's downstream.parquet when present: per-arm means, paired
differences A - B with CIs that favour the better arm in the measure's direction, a figure and a report section."""
import pandas as pd

from analysis.fakerun import make_run
from analysis.main import run_analysis
from qgan import results

SHIFT = {"bernoulli": 0.0, "product": 0.5, "qcbm": 1.0}


def _downstream(run, folders, real_gains=None):
    rows = []
    for cs, gain in enumerate(real_gains or []):    # the real-vs-real floor: new real images added
        for aug, v in (("none", 0.8), ("generated", 0.8 + gain), ("gain", gain)):
            rows.append(dict(trial_id="real/ferrite", model=results.REAL_FLOOR_MODEL, phase="ferrite", n=0, seed=-1,
                             family="augmentation", measure="accuracy", scarce_size=25, augmentation=aug,
                             classifier_seed=cs, value=v))
    for f in folders:
        cfg = pd.read_json(f / "config.json", typ="series")
        base = dict(trial_id=cfg["trial_id"], model=cfg["model"], phase=cfg["phase"], n=int(cfg["n"]),
                    seed=int(cfg["seed"]))
        s, m = int(cfg["seed"]), str(cfg["model"])
        rows.append({**base, "family": "feature", "measure": "frechet_distance", "scarce_size": 0,
                     "augmentation": "", "classifier_seed": -1, "value": 10 + s + SHIFT[m]})
        for cs in (0, 1):
            gain = 0.1 + 0.01 * s if m == "qcbm" else 0.0
            for aug, v in (("none", 0.8), ("generated", 0.8 + gain), ("gain", gain)):
                rows.append({**base, "family": "augmentation", "measure": "accuracy", "scarce_size": 25,
                             "augmentation": aug, "classifier_seed": cs, "value": v})
    results.downstream_frame(rows).to_parquet(run / "downstream.parquet", index=False)


def test_paired_downstream_differences_favour_the_better_arm_in_each_measures_direction(tmp_path):
    run = tmp_path / "run"
    folders = make_run(run, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1, 2, 3),
                       models=("bernoulli", "product", "qcbm"))
    _downstream(run, folders)
    run_analysis(run, tmp_path / "out", resamples=200, montage_samples=0, progress=False)
    pairs = pd.read_parquet(tmp_path / "out" / "downstream_pairs.parquet").set_index(["comparison", "measure"])
    fd = pairs.loc[("qcbm_vs_bernoulli", "frechet_distance")]
    assert fd["n_pairs"] == 4 and abs(fd["mean_diff"] - 1.0) < 1e-12 and fd["favours"] == "bernoulli"
    assert pairs.loc[("product_vs_bernoulli", "frechet_distance"), "favours"] == "bernoulli"
    acc = pairs.loc[("qcbm_vs_product", "accuracy")]
    assert acc["augmentation"] == "gain" and acc["favours"] == "qcbm" and acc["mean_diff"] > 0.1
    arms = pd.read_parquet(tmp_path / "out" / "downstream_arms.parquet")
    none = arms[(arms["augmentation"] == "none")]
    assert set(none["model"]) == set(SHIFT) and (none["mean"] == 0.8).all()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Downstream measures" in report and "figures/downstream.png" in report
    assert (tmp_path / "out" / "figures" / "downstream.png").exists()


def test_a_run_without_downstream_parquet_gets_no_downstream_section(tmp_path):
    run = tmp_path / "run"
    make_run(run, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), models=("bernoulli", "qcbm"))
    run_analysis(run, tmp_path / "out", resamples=50, figures=False, progress=False)
    assert not (tmp_path / "out" / "downstream_pairs.parquet").exists()
    assert "Downstream" not in (tmp_path / "out" / "report.md").read_text()


def test_the_report_says_whether_the_augmentation_measure_can_speak(tmp_path):
    """Readable only where new real images gain beyond seed noise; otherwise the report says no arm can be
    credited."""
    run = tmp_path / "run"
    folders = make_run(run, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), models=("bernoulli", "qcbm"))
    said = {}
    for name, gains in (("flat", [0.0, 0.01, -0.01]), ("room", [0.10, 0.12, 0.11])):
        _downstream(run, folders, real_gains=gains)
        run_analysis(run, tmp_path / name, resamples=50, figures=False, progress=False)
        said[name] = (tmp_path / name / "report.md").read_text()
    assert "### Can the augmentation measure speak?" in said["flat"]
    assert "cannot credit any arm" in said["flat"] and "**no headroom**" in said["flat"]
    assert "cannot credit any arm" not in said["room"] and "**informative**" in said["room"]
    assert "can be read at ferrite 25 only" in said["room"]

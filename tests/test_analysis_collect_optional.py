"""collect carries the newer, optional result columns (diversity, prior diagnostics, latent pools) through,
and old runs without them still collect (NaN / NA)."""
import json
import math

import pandas as pd
import pytest

from analysis import collect, schema
from analysis.fakerun import BASE_CONFIG, make_run, write_trial


NEW_CONFIG_FIELDS = ("latent_pool", "theta_init_scale", "qcbm_step", "fd_common_random", "mmd_estimator")


def _make_old_style(folders):
    """Rewrite trial folders as an older trainer wrote them: no new config fields, epoch columns or summary
    fields."""
    for d in folders:
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k not in NEW_CONFIG_FIELDS}))
        ep = pd.read_parquet(d / "epochs.parquet")
        ep.drop(columns=list(schema.OPTIONAL_EPOCH_COLUMNS)).to_parquet(d / "epochs.parquet", index=False)
        summ = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({k: v for k, v in summ.items()
                                                    if k not in schema.OPTIONAL_SUMMARY_FIELDS}))


def test_old_style_run_collects_with_nan_optional_columns(tmp_path):
    _make_old_style(make_run(tmp_path, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), epochs=5))
    col = collect(tmp_path, progress=False)
    t, e = col.trials, col.epochs
    assert "latent_pool" not in t.columns                     # old configs lack the field
    assert not t["latent_pool_used"].any()
    for c in ("diversity_final", "diversity_real", "prior_tv_final", "prior_total_correlation_bits_final"):
        assert t[c].isna().all(), c
    assert t["prior_exact_final"].isna().all() and str(t["prior_exact_final"].dtype) == "boolean"
    for c in schema.OPTIONAL_EPOCH_COLUMNS:
        assert c in e.columns and e[c].isna().all(), c
    assert str(e["prior_exact"].dtype) == "boolean"
    schema.check_columns(t, "trials.parquet")
    schema.check_columns(e, "epochs.parquet")


def test_new_epoch_columns_and_summary_fields_are_carried_through(tmp_path):
    make_run(tmp_path, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), epochs=10,
             models=("bernoulli", "product", "qcbm"), update_every={"ferrite": 2}, diagnostics=True,
             diversity=True)
    col = collect(tmp_path, progress=False)
    t = col.trials.set_index("trial_id")
    e = col.epochs
    q = e[e["trial_id"] == "ferrite-qcbm-n4-t64-s0"].set_index("epoch")
    assert q.loc[2, "prior_tv"] == pytest.approx(0.05) and math.isnan(q.loc[3, "prior_tv"])
    assert bool(q.loc[2, "prior_exact"]) and not bool(q.loc[3, "prior_exact"])  # no update at epoch 3
    assert q.loc[10, "prior_entropy_bits"] == pytest.approx(4 - 0.5)
    # 5 updates in 10 epochs: final TV 0.25 (qcbm) and 0.15 (product); a product prior has no total correlation
    assert t.loc["ferrite-qcbm-n4-t64-s0", "prior_tv_final"] == pytest.approx(0.25)
    assert t.loc["ferrite-product-n4-t64-s0", "prior_tv_final"] == pytest.approx(0.15)
    assert t.loc["ferrite-product-n4-t64-s0", "prior_total_correlation_bits_final"] == 0.0
    assert math.isnan(t.loc["ferrite-product-n4-t64-s0", "theta_shift_rxx_final"])
    assert math.isnan(t.loc["ferrite-bernoulli-n4-t64-s0", "prior_tv_final"])
    assert bool(t.loc["ferrite-qcbm-n4-t64-s0", "prior_exact_final"])
    assert pd.isna(t.loc["ferrite-bernoulli-n4-t64-s0", "prior_exact_final"])
    assert t.loc["ferrite-qcbm-n4-t64-s1", "diversity_final"] == pytest.approx(0.45)
    assert (t["diversity_real"] == 0.5).all()
    assert set(t["model"]) == {"bernoulli", "product", "qcbm"} and t["usable"].all()


def test_diversity_final_falls_back_to_last_evaluated_epoch(tmp_path):
    cfg = dict(BASE_CONFIG, epochs=3, trial_id="x")
    write_trial(tmp_path / "x", cfg, [1.0, 1.0, float("nan")],
                epoch_extra={"diversity": [0.3, 0.35, float("nan")]})
    t = collect(tmp_path, progress=False).trials
    assert t.loc[0, "diversity_final"] == pytest.approx(0.35) and math.isnan(t.loc[0, "diversity_real"])


def test_latent_pool_used_by_pool_size_or_qcbm_pool_backend(tmp_path):
    rows = {"fresh": dict(model="qcbm", latent_pool=0, backend="exact"),
            "pool": dict(model="bernoulli", latent_pool=256),
            "noisy": dict(model="qcbm", latent_pool=0, backend="aer-noisy"),
            "ionq": dict(model="qcbm", backend="ionq"),
            "product_ionq": dict(model="product", latent_pool=0, backend="ionq"),   # product ignores backend
            "old": dict(model="qcbm", backend="exact")}
    for tid, kw in rows.items():
        write_trial(tmp_path / tid, dict(BASE_CONFIG, epochs=2, trial_id=tid, **kw), [1.0, 1.0])
    t = collect(tmp_path, progress=False).trials.set_index("trial_id")
    used = t["latent_pool_used"].to_dict()
    assert used == {"fresh": False, "pool": True, "noisy": True, "ionq": True, "product_ionq": False,
                    "old": False}

"""The per-trial result contract has one home (qgan.results): no second list of its columns or fields anywhere,
qgan's science modules never load Ray, and a Bernoulli and a QCBM trial of one seed come out of run_trial and
the analysis pipeline as one paired row."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from qgan import results

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qgan", "sweeps", "analysis", "benchmarks")


def _string_sequences(path: Path):
    """Every list/tuple/set literal in `path` whose elements are all string constants."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and node.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            yield node.lineno, [e.value for e in node.elts]


def test_epoch_columns_summary_fields_and_downstream_columns_are_listed_in_results_only():
    names = {"epoch columns": set(results.EPOCH_COLUMNS) - {"epoch", "mmd", "seconds"},
             "summary fields": set(results.SUMMARY_FIELDS) - {"status", "theta"},
             "downstream columns": set(results.DOWNSTREAM_COLUMNS) - {"trial_id", "model", "phase", "n", "seed"},
             "downstream measures": set(results.DOWNSTREAM_MEASURES)}
    offenders = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path == ROOT / "qgan" / "results.py":
                continue
            for line, seq in _string_sequences(path):
                for what, fields in names.items():
                    if len(set(seq) & fields) >= 3:
                        offenders.append(f"{path.relative_to(ROOT)}:{line} lists {what}: {seq}")
    assert not offenders, "\n".join(offenders)


def test_importing_the_trainer_and_quantum_core_leaves_ray_unloaded():
    code = ("import sys, qgan.train, qgan.quantum, qgan.results, qgan.config; "
            "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_results_module_and_config_import_without_torch():
    code = ("import sys, qgan.results, qgan.config, qgan.cli_errors; "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_fake_run_config_is_a_valid_trial_config():
    from analysis.fakerun import BASE_CONFIG
    from qgan.config import TrialConfig

    assert TrialConfig.from_dict(BASE_CONFIG).to_dict() == BASE_CONFIG


def test_same_seed_bernoulli_and_qcbm_trials_come_out_of_analysis_as_one_paired_row(make_dataset, tmp_path):
    from analysis.main import run_analysis
    from qgan.train import run_trial

    data = make_dataset(40, seed=1)
    base = dict(n=3, train_size=16, eval_size=8, batch_size=8, width=4, epochs=3, update_every=1, qcbm_epochs=2,
                qcbm_samples=32, data_source=data, n_samples_saved=0, checkpoint_every=100, seed=0)
    run = tmp_path / "run"
    for model in ("bernoulli", "qcbm"):
        tid = f"{model}-s0"
        run_trial({**base, "model": model}, out_dir=run / "trials" / tid, trial_id=tid)
        assert json.loads((run / "trials" / tid / "config.json").read_text())[results.TRIAL_ID] == tid
    run_analysis(run, tmp_path / "out", resamples=200)
    imp = pd.read_parquet(tmp_path / "out" / "improvement.parquet")
    paired = imp[imp["pair_status"] == "paired"]
    assert len(paired) == 1 and paired["n_seeds"].iloc[0] == 1
    pairs = pd.read_parquet(tmp_path / "out" / "pairs.parquet")
    assert pairs[["trial_id_a", "trial_id_b"]].values.tolist() == [["qcbm-s0", "bernoulli-s0"]]
    epochs = pd.read_parquet(tmp_path / "out" / "epochs.parquet")
    assert list(epochs.columns[1:len(results.EPOCH_COLUMNS) + 2]) == ["epoch", "mmd", "mmd_rolling",
                                                                       *results.EPOCH_COLUMNS[2:]]

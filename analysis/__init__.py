"""Results -> Parquet tables, statistics, figures and a report (never imports torch or ray).

`python -m analysis RUN_DIR [--out DIR]`; in Python: `analysis.run_analysis(run_dir, out_dir)`.
Modules: collect (trials/epochs tables), improvement (Eq. 10 per comparison of the three arms and paired
setting), winrate (win / tie / loss over independent comparisons, Wilson, sign, Wilcoxon), stats, figures,
fmt (RI to the precision of its CI), report, schema (arms, field roles and table columns), fakerun (hand-made runs).
"""
from .collect import collect
from .main import run_analysis

__all__ = ["collect", "run_analysis"]

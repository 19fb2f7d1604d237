"""Run the bainite grid: QCBM-WGAN vs Bernoulli-WGAN trials on Ray Tune.

    python sweeps/bainite.py --preset smoke                       # embedded local Ray
    ray job submit --working-dir . -- python sweeps/bainite.py --preset paper --storage s3://bucket/runs

See docs/sweeps.md for every flag, the results layout and how to resume.
"""
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = str(_HERE.parent)
# Run as a script, Python puts sweeps/ first on sys.path; the package lives one level up.
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE:
    sys.path[0] = _ROOT
elif _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from sweeps.driver import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("bainite"))

"""Entry point: `python -m analysis RUN_DIR [--out DIR]` (see analysis/main.py)."""
import sys

from analysis.main import main

sys.exit(main())

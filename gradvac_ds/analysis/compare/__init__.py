"""``gradvac-compare``: is one training mode better than another, over seeds and with paired tests?"""

from gradvac_ds.analysis.compare.report import compare_runs

__all__ = ["compare_runs"]

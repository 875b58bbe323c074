"""Gradient-similarity tools for GradVac runs.

- :mod:`gradvac_ds.analysis.log`: the similarity log written during training (numpy only), and
  its reader.
- :mod:`gradvac_ds.analysis.report`: the offline report (figures, report.json, report.txt) made
  from a log; it needs the ``[analysis]`` extra (matplotlib, scipy, scikit-learn). Its command is
  ``gradvac-analyze`` (``python -m gradvac_ds.analysis``).
"""

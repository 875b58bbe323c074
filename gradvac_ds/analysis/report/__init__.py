"""The offline similarity report: :func:`gradvac_ds.analysis.report.analyze.analyze_run`."""

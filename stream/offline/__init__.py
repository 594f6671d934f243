"""The offline driver: a stream replayed through the same engine, scored and drawn
(:func:`driftline.offline.backtest.run_backtest`; sources, built-in datasets, scoring, report.png)."""

"""``bot sweep``: configurations × walk-forward folds × symbol sets, each a backtest through the one engine.

    spec.py       the TOML spec, validated (errors name the key)
    runs.py       grid points and runs with stable ids
    worker.py     one run: a backtest into its own trade log, its figures read back
    schedule.py   sequential or Ray execution
    store.py      the results file (SQLite; finished runs are skipped on a rerun)
    selection.py  pure: choose on validation, deflated Sharpe ratio, PBO by CSCV
    report.py     the results table (CSV) and the selection as text
    driver.py     the orchestration
"""

"""The runs: one engine that decides each bar (engine), driven by the live feed (daemon), by history in
memory (backtest) or by refits over folds (walkforward)."""

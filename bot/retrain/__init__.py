"""Training: ``bot train``'s fit-and-save step, and retraining while the daemon runs (``[model.retrain]``):
when, on what, in which process, and the swap.

    training.py    fit a model on candles and save its checkpoint (``bot train``, the worker, walk-forward refits)

    schedule.py    when a retrain is due (pure: bars since the last one, a skill-monitor alarm)
    job.py         what a retrain is: its data ranges and settings (pure), as a JSON file for the worker
    worker.py      ``python -m bot.retrain.worker JOB``: the child process that trains (the ``bot train`` path),
                   scores candidate and serving model on the held-out bars, gates, writes checkpoint + result
    checkpoints.py the checkpoint folder: hashing, retention, load-and-verify
    keeper.py      the daemon's side: records, launches, waits, swaps at a bar boundary
"""

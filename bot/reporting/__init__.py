"""Reviews of a run, read back from its trade log.

``bot report``'s trade-log review: load (SQLite, read-only) → analyse (:mod:`bot.analytics`) → render
(text, a self-contained HTML page, a PNG, CSV exports); and ``bot status`` (:mod:`bot.reporting.status`):
where a run stands now.
"""

"""``bot report``'s trade-log review: load (SQLite, read-only) → analyse (:mod:`bot.analytics`) → render
(text, a self-contained HTML page, a PNG, CSV exports)."""

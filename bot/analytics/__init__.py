"""Pure analytics of a trade log: performance, round trips, forecast quality and the gate's worth.

Nothing here reads a file or a database: :mod:`bot.reporting` loads the trade log and hands these
functions plain arrays and tuples, so each formula is tested on constructed inputs.
"""

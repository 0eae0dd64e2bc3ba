"""From candles to bars: the closed klines of one time assembled into a bar (assembly), checked for
plausibility, kept in rolling per-symbol windows (buffer), and watched for silence (watchdog)."""

"""Notifications to the operator: fills, trading-state changes, feed outages, skill alarms, a daily summary.

    settings.py   the ``[notify]`` section (imported by ``bot.config``: keep this package's
                  ``__init__`` free of imports so that stays cycle-free)
    messages.py   decided bars → :class:`Notification` values (pure)
    channels.py   a notification → one HTTP request, an answer → delivered / retry / refused (pure)
    delivery.py   bounded queues and background workers that send with retries (httpx)

Errors: a Telegram chat without ``BOT_TELEGRAM_TOKEN`` is a :class:`~bot.errors.ConfigError` at
start-up; delivery failures are logged and counted, never raised into the engine.
"""

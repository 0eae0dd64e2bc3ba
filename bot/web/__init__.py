"""The dashboard and JSON API (``bot serve``, and the daemon's ``[api]``): read-only views of a trade log and
token-protected operator commands.

    data.py      the trade log, opened mode=ro; figures from bot.reporting (the review and the status)
    figures.py   Plotly figure specifications (pure)
    html.py      tables and the page shell;  pages.py  each page's content
    commands.py  operator commands appended to the trade log (the engine takes them at its next bar)
    app.py       the FastAPI application;  serve.py  binding rules and the uvicorn server
"""

"""The trade log's schema (a public interface: people query this file) and the statements that write it.

Change the schema only with a new :data:`SCHEMA_VERSION` and a migration.
"""

from __future__ import annotations

SCHEMA_VERSION = 4

# Semicolons appear only at the ends of statements (the script is run whole by executescript).
SCHEMA = """
-- Sigma-bot trade log, schema version 4 (older versions are migrated on open: MIGRATE_1_TO_2, MIGRATE_2_TO_3,
-- MIGRATE_3_TO_4).
--
-- Conventions
--   run_id   one trading account (config [run] id). A restart with the same id
--            and the same config resumes the account as a new session.
--   bar_ms   a bar's OPEN time, integer UTC milliseconds, as the exchange gives it.
--            Every row below is keyed by run and bar (runs and sessions aside).
--   money    cash, quantities, prices and fees are TEXT holding exact decimal
--            strings (Python str(Decimal)), so sums reconcile to the last unit.
--            Add them up with Decimal; CAST(x AS REAL) is for a quick look only.
--   mu/sigma model outputs, REAL.
--
-- A bar is written in one transaction: every row of the bar is here, or none
-- is. The bar's equity row marks it as written; writing it again is a no-op.

CREATE TABLE IF NOT EXISTS schema_version (
    version      INTEGER NOT NULL            -- one row; the bot refuses versions it does not know
);

-- One row per trading account.
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    created_ms   INTEGER NOT NULL,           -- wall clock when the run first started
    mode         TEXT NOT NULL,              -- 'paper' or 'live'
    config_json  TEXT NOT NULL,              -- canonical settings snapshot (Settings.to_json())
    config_hash  TEXT NOT NULL,              -- a run keeps one config; another needs a new run id
    code_version TEXT NOT NULL               -- code that created the run (sessions record their own)
);

-- One row per daemon start. ended_ms IS NULL: still running, or it did not end cleanly.
CREATE TABLE IF NOT EXISTS sessions (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    session_no   INTEGER NOT NULL,           -- 1, 2, ... within the run
    started_ms   INTEGER NOT NULL,
    ended_ms     INTEGER,
    end_reason   TEXT,
    code_version TEXT NOT NULL,
    PRIMARY KEY (run_id, session_no)
) WITHOUT ROWID;

-- The closed bars the decisions were made on.
CREATE TABLE IF NOT EXISTS candles (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    symbol       TEXT NOT NULL,              -- ccxt form, 'BTC/USDT'
    bar_ms       INTEGER NOT NULL,
    close_ms     INTEGER NOT NULL,
    open         TEXT NOT NULL,
    high         TEXT NOT NULL,
    low          TEXT NOT NULL,
    close        TEXT NOT NULL,
    volume       TEXT NOT NULL,
    PRIMARY KEY (run_id, symbol, bar_ms)
) WITHOUT ROWID;

-- Predictive distribution of the next bar's log return, made at the close of bar_ms: mean mu, standard
-- deviation sigma, as the decision used them (mu = skill * mu_raw; sigma recalibrated from sigma_raw).
-- Columns after sigma are NULL in rows written before version 3 (N(mu, sigma^2) taken at face value).
CREATE TABLE IF NOT EXISTS forecasts (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms       INTEGER NOT NULL,
    symbol       TEXT NOT NULL,
    model        TEXT NOT NULL,
    mu           REAL NOT NULL,
    sigma        REAL NOT NULL,
    mu_raw       REAL,                       -- the model's own mu (since version 3)
    sigma_raw    REAL,                       -- the model's own sigma
    skill        REAL,                       -- demonstrated-skill scale: mu = skill * mu_raw
    edge         REAL,                       -- expected log return over the forecast's horizon (NULL: = mu)
    edge_se      REAL,                       -- its standard error (Inf: no skill estimate yet)
    z68          REAL,                       -- central 68 % interval: mu +- z68 * sigma (calibrated)
    z95          REAL,                       -- central 95 % interval: mu +- z95 * sigma
    nu           REAL,                       -- Student-t degrees of freedom of the density (Inf: Gaussian)
    alarm        TEXT,                       -- the skill monitor's alarm while one is active ('' none)
    state        TEXT,                       -- JSON: skill regression, calibration, monitor after this bar
    model_version INTEGER,                   -- models.version that made it (since version 4; NULL before)
    PRIMARY KEY (run_id, bar_ms, symbol, model)
) WITHOUT ROWID;

-- What the decision step chose at the close of bar_ms, refusals included.
CREATE TABLE IF NOT EXISTS decisions (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms       INTEGER NOT NULL,
    symbol       TEXT NOT NULL,
    action       TEXT NOT NULL,              -- 'buy', 'sell' or 'none'
    target_qty   TEXT NOT NULL,
    current_qty  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (run_id, bar_ms, symbol)
) WITHOUT ROWID;

-- Orders submitted at the close of bar_ms; they fill no earlier than the next open.
-- Live orders carry the client order id derived from (run_id, bar_ms, symbol) on the exchange.
CREATE TABLE IF NOT EXISTS orders (
    run_id         TEXT NOT NULL REFERENCES runs (run_id),
    order_id       TEXT NOT NULL,
    bar_ms         INTEGER NOT NULL,
    symbol         TEXT NOT NULL,
    side           TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    type           TEXT NOT NULL DEFAULT 'market' CHECK (type IN ('market', 'limit', 'liquidation')),
    qty            TEXT NOT NULL,
    leverage       TEXT NOT NULL DEFAULT '1', -- isolated margin taken = notional / leverage
    status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'filled', 'cancelled')),
    status_reason  TEXT,                     -- why it was cancelled (or refused by the exchange)
    updated_bar_ms INTEGER,                  -- the bar whose write last changed status
    price          TEXT,                     -- limit price; NULL for market orders (since version 2)
    PRIMARY KEY (run_id, order_id)
) WITHOUT ROWID;

-- At most one decided order per symbol per bar; a liquidation may share its bar.
CREATE UNIQUE INDEX IF NOT EXISTS orders_one_per_bar ON orders (run_id, bar_ms, symbol)
    WHERE type IN ('market', 'limit');

-- Fills at the open of bar_ms (a later bar than decision_bar_ms), or a liquidation
-- inside bar_ms (reason 'liquidation', its order row of type 'liquidation',
-- decision_bar_ms = bar_ms: the margin check, not a decision, closed the position).
-- A paper order fills once (trade_id ''); a live order has one row per exchange trade
-- (trade_id = the exchange's trade id), logged at the bar whose poll first saw it.
-- Signed cash flow of a fill: -qty*price for a buy, +qty*price for a sell, minus fee.
CREATE TABLE IF NOT EXISTS fills (
    run_id          TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    decision_bar_ms INTEGER NOT NULL,
    bar_ms          INTEGER NOT NULL,        -- the bar at whose open it filled (live: whose poll saw it)
    side            TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    qty             TEXT NOT NULL,
    price           TEXT NOT NULL,
    fee             TEXT NOT NULL,           -- in the quote asset
    reason          TEXT NOT NULL,
    trade_id        TEXT NOT NULL DEFAULT '', -- the exchange's trade id; '' for paper fills (since version 2)
    PRIMARY KEY (run_id, order_id, trade_id),
    FOREIGN KEY (run_id, order_id) REFERENCES orders (run_id, order_id)
) WITHOUT ROWID;

-- Positions marked at the close of bar_ms.
CREATE TABLE IF NOT EXISTS positions (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms       INTEGER NOT NULL,
    symbol       TEXT NOT NULL,
    qty          TEXT NOT NULL,              -- negative when short
    avg_price    TEXT NOT NULL,
    mark         TEXT NOT NULL,
    margin       TEXT NOT NULL,              -- isolated margin allocated to the position
    liq_price    TEXT,                       -- the margin check liquidates here; NULL: it cannot be
    PRIMARY KEY (run_id, bar_ms, symbol)
) WITHOUT ROWID;

-- The account marked at the close of bar_ms: equity = cash + sum(qty * mark).
CREATE TABLE IF NOT EXISTS equity (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms       INTEGER NOT NULL,
    cash         TEXT NOT NULL,
    equity       TEXT NOT NULL,
    PRIMARY KEY (run_id, bar_ms)
) WITHOUT ROWID;

-- Perpetual funding paid at bar_ms (open prices): amount = -qty * mark * rate, added to cash.
CREATE TABLE IF NOT EXISTS funding (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms       INTEGER NOT NULL,
    symbol       TEXT NOT NULL,
    qty          TEXT NOT NULL,
    mark         TEXT NOT NULL,
    rate         TEXT NOT NULL,
    amount       TEXT NOT NULL,
    PRIMARY KEY (run_id, bar_ms, symbol)
) WITHOUT ROWID;

-- The trading state after bar_ms; the last row is what a restart resumes.
CREATE TABLE IF NOT EXISTS risk_state (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms       INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('ACTIVE', 'REDUCING', 'HALTED')),
    since_bar_ms INTEGER,                    -- bar at which this state began
    reason       TEXT NOT NULL,
    peak_equity  TEXT NOT NULL,              -- drawdowns are measured from here
    coverage_68  REAL NOT NULL,              -- running share of outcomes inside the 68 % interval
    coverage_95  REAL NOT NULL,
    outcomes     INTEGER NOT NULL,           -- forecasts scored so far
    entry_bars   TEXT NOT NULL,              -- JSON {symbol: bar the position took its direction}
    PRIMARY KEY (run_id, bar_ms)
) WITHOUT ROWID;

-- VaR and expected shortfall of the target book decided at bar_ms (positive losses, quote asset).
CREATE TABLE IF NOT EXISTS var_estimates (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms       INTEGER NOT NULL,
    method       TEXT NOT NULL,              -- 'model', 'historical', 'cornish_fisher'
    horizon      INTEGER NOT NULL,           -- bars
    alpha        REAL NOT NULL,
    var          REAL NOT NULL,
    es           REAL NOT NULL,
    PRIMARY KEY (run_id, bar_ms, method, horizon)
) WITHOUT ROWID;

-- Each deleveraging step at bar_ms: the largest contributor cut, binding VaR before and after.
CREATE TABLE IF NOT EXISTS deleverage_steps (
    run_id          TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms          INTEGER NOT NULL,
    step            INTEGER NOT NULL,
    symbol          TEXT NOT NULL,
    exposure_before REAL NOT NULL,
    exposure_after  REAL NOT NULL,
    var_before      REAL NOT NULL,
    var_after       REAL NOT NULL,
    PRIMARY KEY (run_id, bar_ms, step)
) WITHOUT ROWID;

-- Feed outages: no closed bar for longer than the timeframe plus the watchdog's grace.
-- ended_ms IS NULL while the outage lasts (or if the daemon stopped during it).
CREATE TABLE IF NOT EXISTS outages (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    started_ms   INTEGER NOT NULL,           -- wall clock when the watchdog noticed
    ended_ms     INTEGER,                    -- wall clock of the next closed bar
    last_bar_ms  INTEGER,                    -- the last bar decided before the outage
    reason       TEXT NOT NULL,
    flattened    INTEGER NOT NULL DEFAULT 0, -- 1: the watchdog halted trading to flatten
    PRIMARY KEY (run_id, started_ms)
) WITHOUT ROWID;

-- Market-data messages (sources 'websocket', 'rest') and orders the exchange refused (source
-- 'exchange'), counted by reason per session (one example kept per reason).
CREATE TABLE IF NOT EXISTS rejections (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    session_no   INTEGER NOT NULL,
    source       TEXT NOT NULL,              -- 'websocket', 'rest' or 'exchange'
    reason       TEXT NOT NULL,
    count        INTEGER NOT NULL,
    last_ms      INTEGER NOT NULL,           -- wall clock of the latest one
    example      TEXT NOT NULL,              -- the latest rejection's full reason (truncated)
    PRIMARY KEY (run_id, session_no, source, reason)
) WITHOUT ROWID;

-- Operator commands (the dashboard's controls: bot/web/commands.py), taken by the engine at its next bar and
-- logged with that bar's decisions.  Added without a version change (CREATE TABLE IF NOT EXISTS: the store
-- adds it to an existing version-3 file when it opens it).
CREATE TABLE IF NOT EXISTS commands (
    command_id   INTEGER PRIMARY KEY,        -- in the order they were sent
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    created_ms   INTEGER NOT NULL,           -- wall clock when it was sent
    command      TEXT NOT NULL CHECK (command IN ('stop-entries', 'flatten', 'resume')),
    note         TEXT NOT NULL DEFAULT '',   -- the operator's words
    taken_bar_ms INTEGER                     -- the bar whose decision took it; NULL until then
);
CREATE INDEX IF NOT EXISTS commands_pending ON commands (run_id, command_id) WHERE taken_bar_ms IS NULL;

-- When each bar of a live session arrived and was committed (wall clock, ms), for the feed's latency: written
-- by the daemon after the bar's own transaction (a backtest writes none).  Added without a version change,
-- as the commands table above.
CREATE TABLE IF NOT EXISTS bar_timings (
    run_id            TEXT NOT NULL REFERENCES runs (run_id),
    bar_ms            INTEGER NOT NULL,
    close_ms          INTEGER NOT NULL,      -- the bar's close: its open plus the timeframe
    first_received_ms INTEGER NOT NULL,      -- when the first of its candles arrived
    last_received_ms  INTEGER NOT NULL,      -- when the last arrived (the bar could be decided from then)
    committed_ms      INTEGER NOT NULL,      -- when its decisions, orders and fills were committed
    candles           INTEGER NOT NULL,      -- how many of the run's symbols it had
    late              INTEGER NOT NULL CHECK (late IN (0, 1)),  -- decided after the fact from REST
    PRIMARY KEY (run_id, bar_ms)
) WITHOUT ROWID;
-- The model versions of a run (since version 4): the one the run started with, each retrain of the daemon
-- ([model.retrain], bot/retrain/) and each refit of a walk-forward backtest.  Exactly one row per run has
-- status 'serving' once a bar is decided: it changes in the transaction of the first bar the new version
-- decides, so a restart reads the model the last committed bar used.
CREATE TABLE IF NOT EXISTS models (
    run_id          TEXT NOT NULL REFERENCES runs (run_id),
    version         INTEGER NOT NULL,        -- 1, 2, ... within the run
    kind            TEXT NOT NULL,           -- model name: 'baseline', 'cnn_gru', ...
    status          TEXT NOT NULL CHECK (status IN ('training', 'accepted', 'rejected', 'failed', 'serving',
                                                    'retired')),
    trigger         TEXT NOT NULL,           -- 'config' (the run's first), 'schedule', 'alarm', 'walk-forward'
    requested_bar_ms INTEGER,                -- the bar after whose decision the retrain started
    due_bar_ms      INTEGER,                 -- the first bar it may decide
    train_from_ms   INTEGER,                 -- first bar of its training range
    train_to_ms     INTEGER,                 -- end of its training range (exclusive)
    holdout_from_ms INTEGER,                 -- held-out outcomes the gate scored: bars [from, to)
    holdout_to_ms   INTEGER,
    checkpoint      TEXT,                    -- checkpoint file ('' for the baseline or an in-memory refit)
    checkpoint_sha256 TEXT,                  -- of the checkpoint file
    settings        TEXT,                    -- JSON: the job (model kind, ranges, [model] settings)
    train_seconds   REAL,                    -- wall seconds of training
    device          TEXT,                    -- where it trained: 'cpu', 'cuda'
    scores          TEXT,                    -- JSON: candidate's and serving model's held-out scores
    reason          TEXT,                    -- why accepted, rejected or failed
    first_bar_ms    INTEGER,                 -- first bar it decided
    last_bar_ms     INTEGER,                 -- last bar it decided (so far, while serving)
    created_ms      INTEGER NOT NULL,        -- wall clock of the row
    decided_ms      INTEGER,                 -- wall clock of the gate's verdict
    PRIMARY KEY (run_id, version)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS models_one_serving ON models (run_id) WHERE status = 'serving';

-- Resume looks up the open orders; the report adds up fills per symbol.
-- (No index on decisions.action: ~one decision per symbol per bar makes it costly on the hot path.)
CREATE INDEX IF NOT EXISTS orders_open ON orders (run_id, bar_ms) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS fills_by_symbol ON fills (run_id, symbol, bar_ms);
"""

# The commands table alone, for a version-3 file created before it.
_MODELS_AT = SCHEMA.index("-- The model versions of a run")
COMMANDS_DDL = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS commands"):SCHEMA.index("-- When each bar")]
# The bar_timings table alone, likewise.
TIMINGS_DDL = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS bar_timings"):_MODELS_AT]
INSERT_TIMING = ("INSERT OR IGNORE INTO bar_timings (run_id, bar_ms, close_ms, first_received_ms, last_received_ms, "
                 "committed_ms, candles, late) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
MODELS_DDL = SCHEMA[_MODELS_AT:SCHEMA.index("-- Resume looks up")]
PENDING_COMMANDS = ("SELECT command_id, command, note FROM commands WHERE run_id = ? AND taken_bar_ms IS NULL "
                    "ORDER BY command_id")
MARK_COMMAND_TAKEN = "UPDATE commands SET taken_bar_ms = ? WHERE run_id = ? AND command_id = ? AND taken_bar_ms IS NULL"

INSERT_CANDLE = ("INSERT INTO candles (run_id, symbol, bar_ms, close_ms, open, high, low, close, volume) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_FORECAST = ("INSERT INTO forecasts (run_id, bar_ms, symbol, model, mu, sigma, mu_raw, sigma_raw, skill, edge, "
                   "edge_se, z68, z95, nu, alarm, state, model_version) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_DECISION = ("INSERT INTO decisions (run_id, bar_ms, symbol, action, target_qty, current_qty, reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)")
INSERT_ORDER = ("INSERT INTO orders (run_id, order_id, bar_ms, symbol, side, qty, leverage, type, status, "
                "updated_bar_ms, price) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_FILL = ("INSERT INTO fills (run_id, order_id, symbol, decision_bar_ms, bar_ms, side, qty, price, fee, "
                "reason, trade_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
MARK_FILLED = ("UPDATE orders SET status = 'filled', updated_bar_ms = ? "
                "WHERE run_id = ? AND order_id = ? AND status = 'open'")
MARK_CANCELLED = ("UPDATE orders SET status = 'cancelled', status_reason = ?, updated_bar_ms = ? "
                   "WHERE run_id = ? AND order_id = ? AND status = 'open'")
INSERT_POSITION = ("INSERT INTO positions (run_id, bar_ms, symbol, qty, avg_price, mark, margin, liq_price) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_FUNDING = ("INSERT INTO funding (run_id, bar_ms, symbol, qty, mark, rate, amount) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)")
INSERT_RISK_STATE = ("INSERT INTO risk_state (run_id, bar_ms, state, since_bar_ms, reason, peak_equity, coverage_68, "
                     "coverage_95, outcomes, entry_bars) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_VAR = ("INSERT INTO var_estimates (run_id, bar_ms, method, horizon, alpha, var, es) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)")
INSERT_DELEVERAGE = ("INSERT INTO deleverage_steps (run_id, bar_ms, step, symbol, exposure_before, exposure_after, "
                     "var_before, var_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")

# Version 1 → 2: orders gain type 'limit' and a limit price; fills are keyed by exchange trade too.
# SQLite cannot alter a CHECK or a primary key, so both tables are rebuilt (the procedure of
# https://www.sqlite.org/lang_altertable.html#otheralter), run with foreign keys off, in one transaction.
MIGRATE_1_TO_2 = """
ALTER TABLE orders RENAME TO orders_v1;
ALTER TABLE fills RENAME TO fills_v1;
DROP INDEX IF EXISTS orders_one_per_bar;
DROP INDEX IF EXISTS orders_open;
DROP INDEX IF EXISTS fills_by_symbol;
""" + SCHEMA[SCHEMA.index("-- Orders submitted at the close"):SCHEMA.index("-- Positions marked at the close")] + """
INSERT INTO orders (run_id, order_id, bar_ms, symbol, side, type, qty, leverage, status, status_reason,
                    updated_bar_ms, price)
    SELECT run_id, order_id, bar_ms, symbol, side, type, qty, leverage, status, status_reason, updated_bar_ms, NULL
    FROM orders_v1;
INSERT INTO fills (run_id, order_id, symbol, decision_bar_ms, bar_ms, side, qty, price, fee, reason, trade_id)
    SELECT run_id, order_id, symbol, decision_bar_ms, bar_ms, side, qty, price, fee, reason, '' FROM fills_v1;
DROP TABLE fills_v1;
DROP TABLE orders_v1;
CREATE INDEX IF NOT EXISTS orders_open ON orders (run_id, bar_ms) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS fills_by_symbol ON fills (run_id, symbol, bar_ms);
UPDATE schema_version SET version = 2;
"""

# Version 2 → 3: forecasts gain the raw model outputs, the skill scale, the calibrated intervals and shape,
# the skill monitor's alarm and the scoring state a restart resumes.  Added columns only (NULL in old rows).
MIGRATE_2_TO_3 = """
ALTER TABLE forecasts ADD COLUMN mu_raw REAL;
ALTER TABLE forecasts ADD COLUMN sigma_raw REAL;
ALTER TABLE forecasts ADD COLUMN skill REAL;
ALTER TABLE forecasts ADD COLUMN edge REAL;
ALTER TABLE forecasts ADD COLUMN edge_se REAL;
ALTER TABLE forecasts ADD COLUMN z68 REAL;
ALTER TABLE forecasts ADD COLUMN z95 REAL;
ALTER TABLE forecasts ADD COLUMN nu REAL;
ALTER TABLE forecasts ADD COLUMN alarm TEXT;
ALTER TABLE forecasts ADD COLUMN state TEXT;
UPDATE schema_version SET version = 3;
"""

# Version 3 → 4: the models table (model versions, retrains, swaps) and the version behind each forecast.
MIGRATE_3_TO_4 = """
ALTER TABLE forecasts ADD COLUMN model_version INTEGER;
""" + MODELS_DDL + """
UPDATE schema_version SET version = 4;
"""

# A model version row (bot/store/models.py); a row already there (a walk-forward refit redone on resume) stays.
INSERT_MODEL = ("INSERT INTO models (run_id, version, kind, status, trigger, requested_bar_ms, due_bar_ms, "
                "train_from_ms, train_to_ms, holdout_from_ms, holdout_to_ms, checkpoint, checkpoint_sha256, "
                "settings, train_seconds, device, scores, reason, first_bar_ms, last_bar_ms, created_ms, "
                "decided_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, version) DO NOTHING")
# In the transaction of the first bar a version decides: the one serving before is retired at the bar before.
RETIRE_SERVING = ("UPDATE models SET status = 'retired', last_bar_ms = COALESCE(last_bar_ms, ?) "
                  "WHERE run_id = ? AND status = 'serving' AND version != ?")
START_SERVING = "UPDATE models SET status = 'serving' WHERE run_id = ? AND version = ?"
# Every bar: the serving version's first and last bar decided.
MARK_SERVED = ("UPDATE models SET first_bar_ms = COALESCE(first_bar_ms, ?), last_bar_ms = ? "
               "WHERE run_id = ? AND version = ?")

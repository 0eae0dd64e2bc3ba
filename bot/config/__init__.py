"""``config.toml`` → frozen, typed, validated settings.

Every section is a frozen dataclass; every key declares its type and, where it
has one, its allowed range or choices in the field's metadata.  The loader
walks the TOML against those declarations, so an unknown key, a wrong type or
an out-of-range value stops start-up with a :class:`ConfigError` that names the
dotted key and what is allowed.  Defaults are the embedded defaults: an empty
file (or none) gives a working paper-trading configuration.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.config.notify import NotifySettings, check_notify_settings
from bot.config.secrets import ENV_HINT, check_config_data_has_no_secrets
from bot.errors import ConfigError
from risk.settings import GateSettings, RiskSettings, SizingSettings, StateSettings, VarSettings
from strategies.configkeys import _key
from strategies.settings import (
    MODELS,
    BaselineModelSettings,
    CalibrationSettings,
    CnnGruSettings,
    ForecastSettings,
    FusionSettings,
    KnnSettings,
    LstmSettings,
    ModelSettings,
    MonitorSettings,
    MultiAssetSettings,
    RetrainSettings,
    SkillSettings,
    TrainSettings,
)

# Binance kline intervals of fixed length, in milliseconds ("1M" varies, so it is not offered).
TIMEFRAMES_MS: dict[str, int] = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
    "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000,
    "1w": 604_800_000,
}
QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,15}/(" + "|".join(QUOTE_ASSETS) + r")$")
SYMBOL_ALLOWED = f"BASE/QUOTE in upper case with QUOTE one of {', '.join(QUOTE_ASSETS)} (e.g. 'BTC/USDT')"


# Keys that say where a run's trade log is and how it logs, not how it trades: they are left out of
# the config hash, so a log that is moved or copied (or a run that logs elsewhere) still resumes.
RESUME_NEUTRAL_KEYS = frozenset({"run.db", "run.log_level", "run.log_file", "run.log_max_bytes", "run.log_backups"})


@dataclass(frozen=True, slots=True)
class RunSettings:
    id: str = _key("name of this trading account in the database; a restart with the same id resumes it",
                   default="paper")
    mode: str = _key("paper (simulated fills) or live (real orders: also needs --live on the command line "
                     "and BOT_API_KEY/BOT_API_SECRET in the environment)", default="paper", choices=("paper", "live"))
    db: str = _key("SQLite trade log path", default="trades.sqlite")
    log_level: str = _key("logging level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log_file: str = _key("log file, rotated by size; empty: stderr only", default="")
    log_max_bytes: int = _key("rotate the log file at this size", default=10_000_000, lo=10_000, hi=10_000_000_000)
    log_backups: int = _key("rotated log files kept", default=5, lo=0, hi=100)


@dataclass(frozen=True, slots=True)
class MarketSettings:
    exchange: str = _key("exchange whose kline format the feed speaks", default="binance",
                         choices=("binance",))
    symbols: tuple[str, ...] = _key("symbols to trade", default=("BTC/USDT", "ETH/USDT", "XRP/USDT"))
    timeframe: str = _key("bar length", default="1h", choices=tuple(TIMEFRAMES_MS))
    window: int = _key("closed bars kept per symbol and given to the predictor and the VaR estimates "
                       "(which need at least 20 returns)", default=128, lo=32, hi=5000)

    @property
    def timeframe_ms(self) -> int:
        return TIMEFRAMES_MS[self.timeframe]


@dataclass(frozen=True, slots=True)
class FeedSettings:
    ws_url: str = _key("websocket base URL of the combined kline stream",
                       default="wss://stream.binance.com:9443/stream")
    rest_url: str = _key("REST base URL used by ccxt for the warm-up backfill",
                         default="https://api.binance.com/api/v3")
    backfill: bool = _key("fetch the last `window` bars through ccxt before the first decision", default=True)
    assembly_timeout_s: float = _key("seconds to wait for the other symbols' closed bar after the first",
                                     default=10.0, lo=0.0, hi=600.0, lo_open=True)
    reconnect_max_s: float = _key("longest pause between reconnect attempts", default=30.0, lo=0.1, hi=600.0)
    reconnect_base_s: float = _key("first reconnect pause; it doubles per failed attempt, with full jitter",
                                   default=0.5, lo=0.001, hi=60.0)
    silence_timeout_s: float = _key("no frame at all for this long: the link is taken as half-open and "
                                    "reconnected", default=120.0, lo=0.05, hi=86_400.0)
    ping_interval_s: float = _key("websocket ping interval (the server must answer within the same time)",
                                  default=20.0, lo=0.05, hi=3_600.0)
    max_connection_s: float = _key("reconnect before this connection age (Binance closes at 24 h)",
                                   default=84_600.0, lo=1.0, hi=86_400.0)
    max_frame_bytes: int = _key("larger frames are rejected and the connection reopened", default=1_048_576,
                                lo=4096, hi=67_108_864)
    rest_timeout_s: float = _key("timeout of one REST request", default=10.0, lo=0.1, hi=120.0)
    rest_max_attempts: int = _key("tries per REST request on a network error, timeout, rate limit or outage",
                                  default=5, lo=1, hi=100)
    rest_retry_max_s: float = _key("longest pause between REST retries (exponential, full jitter)",
                                   default=30.0, lo=0.0, hi=600.0)
    rest_max_retry_after_s: float = _key("a Retry-After (ban) longer than this fails at once instead of "
                                         "being waited out", default=300.0, lo=0.0, hi=86_400.0)
    max_jump_ratio: float = _key("a streamed closed kline whose open, high, low or close is more than this "
                                 "multiple (or less than 1/this) of the symbol's last close is implausible: "
                                 "held and checked against REST before anything is decided", default=3.0,
                                 lo=1.01, hi=1e6)
    max_jump_sigma: float = _key("a streamed closed kline whose close-to-close log return exceeds this many "
                                 "standard deviations of the window's returns is implausible: held and checked "
                                 "against REST", default=30.0, lo=3.0, hi=1e6)


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    decide_missed_bars: bool = _key("bars missed while disconnected or down are fetched through REST and decided "
                                    "late, in order, before live bars (false: only refill the windows)",
                                    default=True)
    max_missed_bars: int = _key("more missed bars than this are not decided late: the windows are refilled "
                                "and the skip is logged and recorded as an outage", default=48, lo=0, hi=100_000)


@dataclass(frozen=True, slots=True)
class WatchdogSettings:
    stale_after_s: float = _key("no closed bar for this long is a feed outage (0: the timeframe plus 5 min)",
                                default=0.0, lo=0.0, hi=1e7)
    flatten: bool = _key("on an outage, halt trading so the next bar closes every position", default=False)


@dataclass(frozen=True, slots=True)
class PaperSettings:
    initial_cash: Decimal = _key("starting cash in the quote asset", default=Decimal("10000"),
                                 lo=Decimal("1"), hi=Decimal("1e12"))
    taker_fee_bps: Decimal = _key("fee on every market fill, basis points of notional", default=Decimal("10"),
                                  lo=Decimal("0"), hi=Decimal("500"))
    slippage_bps: Decimal = _key("price concession on every market fill, basis points", default=Decimal("2"),
                                 lo=Decimal("0"), hi=Decimal("1000"))
    qty_step: Decimal = _key("order quantities are rounded down to this step", default=Decimal("0.00001"),
                             lo=Decimal("1e-12"), hi=Decimal("1000"), lo_open=True)
    fee_step: Decimal = _key("fees are rounded up to this unit of the quote asset", default=Decimal("0.00000001"),
                             lo=Decimal("1e-12"), hi=Decimal("1"), lo_open=True)
    maintenance_margin_rate: Decimal = _key("a position is liquidated when its isolated margin balance falls to "
                                            "this fraction of its notional", default=Decimal("0.005"),
                                            lo=Decimal("0"), hi=Decimal("0.5"))
    liquidation_fee_bps: Decimal = _key("fee on a liquidation fill, basis points of notional", default=Decimal("50"),
                                        lo=Decimal("0"), hi=Decimal("1000"))
    funding_rate_8h: Decimal = _key("perpetual funding rate charged every 8 h (00, 08, 16 UTC); longs pay "
                                    "when positive; 0 disables", default=Decimal("0"),
                                    lo=Decimal("-0.01"), hi=Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class ExchangeSettings:
    """Where and how live orders go (``run.mode = "live"``); API keys come only from the environment."""

    name: str = _key("exchange that receives live orders (through ccxt)", default="binance", choices=("binance",))
    market: str = _key("spot, or usdm (USDT-M perpetual futures: positions may be short and use leverage)",
                       default="spot", choices=("spot", "usdm"))
    sandbox: bool = _key("use the exchange's testnet / demo environment instead of real money; "
                         "false trades real funds", default=True)
    rest_url: str = _key("REST base URL override for orders (a local stub); empty: the exchange's own "
                         "(testnet when sandbox)", default="")
    order_type: str = _key("market, or limit at limit_offset_bps from the decision bar's close",
                           default="market", choices=("market", "limit"))
    limit_offset_bps: Decimal = _key("limit price offset in basis points, on the passive side: a buy at "
                                     "close x (1 - offset), a sell at close x (1 + offset)",
                                     default=Decimal("5"), lo=Decimal("0"), hi=Decimal("1000"))
    time_in_force: str = _key("time in force of limit orders", default="GTC", choices=("GTC", "IOC", "FOK"))
    limit_ttl_bars: int = _key("bars a limit order may stay open after its decision bar before its "
                               "unfilled rest is cancelled", default=1, lo=1, hi=1000)
    cancel_on_shutdown: bool = _key("cancel the run's open orders on the exchange when the daemon stops",
                                    default=True)
    poll_interval_s: float = _key("pause between status polls of an order that is not final yet at a bar "
                                  "(up to poll_attempts polls)", default=0.5, lo=0.0, hi=60.0)
    poll_attempts: int = _key("status polls of a market order at a bar before it is left for the next bar",
                              default=3, lo=1, hi=100)
    recv_window_ms: int = _key("Binance recvWindow of signed requests: the longest a request may travel",
                               default=5000, lo=1000, hi=60_000)
    timeout_s: float = _key("timeout of one order request; a timed-out order is looked up by its client "
                            "order id before any retry", default=10.0, lo=0.1, hi=120.0)


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """Rules both executors (paper and exchange) apply to every order, whatever risk decided."""

    max_order_leverage_multiple: Decimal = _key(
        "an order whose notional (qty x the last close) exceeds this multiple of risk.sizing.max_gross_leverage "
        "x equity (the lesser of the last two marks) is refused by the executor, never sent or filled: the "
        "last line of defence behind the risk manager's sizing", default=Decimal("4"), lo=Decimal("1"),
        hi=Decimal("1000"))


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The dashboard and JSON API served by the daemon; the operator token comes from BOT_API_TOKEN only."""

    enabled: bool = _key("serve the dashboard and JSON API (bot serve's) from the daemon", default=False)
    host: str = _key("address to listen on; anything but 127.0.0.1, ::1 or localhost needs BOT_API_TOKEN set",
                     default="127.0.0.1")
    port: int = _key("port to listen on", default=8080, lo=1, hi=65535)


@dataclass(frozen=True, slots=True)
class Settings:
    run: RunSettings = field(default_factory=RunSettings, metadata={"doc": "run"})
    market: MarketSettings = field(default_factory=MarketSettings, metadata={"doc": "market"})
    feed: FeedSettings = field(default_factory=FeedSettings, metadata={"doc": "feed"})
    recovery: RecoverySettings = field(default_factory=RecoverySettings, metadata={"doc": "recovery"})
    watchdog: WatchdogSettings = field(default_factory=WatchdogSettings, metadata={"doc": "watchdog"})
    model: ModelSettings = field(default_factory=ModelSettings, metadata={"doc": "model"})
    forecast: ForecastSettings = field(default_factory=ForecastSettings, metadata={"doc": "forecast"})
    risk: RiskSettings = field(default_factory=RiskSettings, metadata={"doc": "risk"})
    paper: PaperSettings = field(default_factory=PaperSettings, metadata={"doc": "paper"})
    exchange: ExchangeSettings = field(default_factory=ExchangeSettings, metadata={"doc": "exchange"})
    execution: ExecutionSettings = field(default_factory=ExecutionSettings, metadata={"doc": "execution"})
    api: ApiSettings = field(default_factory=ApiSettings, metadata={"doc": "api"})
    notify: NotifySettings = field(default_factory=NotifySettings, metadata={"doc": "notify"})

    def to_json(self) -> str:
        """A canonical JSON snapshot, stored with each run."""
        return json.dumps(_plain(self), sort_keys=True, separators=(",", ":"))

    @property
    def config_hash(self) -> str:
        """The hash a run keeps: every key but :data:`RESUME_NEUTRAL_KEYS` and :data:`RUN_NEUTRAL_SECTIONS`."""
        data = json.loads(self.to_json())
        for key in RESUME_NEUTRAL_KEYS:
            section, name = key.split(".")
            data[section].pop(name, None)
        for section in RUN_NEUTRAL_SECTIONS:
            data.pop(section, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]

    def with_overrides(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some keys replaced, validated like the file (``run={"db": "x.sqlite"}``)."""
        data = json.loads(self.to_json())
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return _build(Settings, data, "")

    def with_keys(self, values: typing.Mapping[str, Any]) -> Settings:
        """A copy with dotted keys replaced (``{"risk.gate.exit_margin": 0.5}``), validated like the file."""
        data = json.loads(self.to_json())
        for key, value in values.items():
            node = data
            *sections, name = key.split(".")
            for part in sections:
                if not isinstance(node.get(part), dict):
                    node[part] = {}   # not a section: the validation below names the key
                node = node[part]
            node[name] = value
        return _build(Settings, data, "")


def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, Decimal):
        return str(obj)
    return obj


def _type_name(tp: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            Decimal: "a number or a decimal string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against the declared type ``tp``; TOML already parsed it."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            f = float(value)
            if f == f and f not in (float("inf"), float("-inf")):
                return f
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Decimal:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                d = Decimal(str(value))
            except InvalidOperation:
                d = None
            if d is not None and d.is_finite():
                return d
    elif typing.get_origin(tp) is tuple:
        (inner, _) = typing.get_args(tp)
        if isinstance(value, list):
            return tuple(_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
        raise ConfigError(f"config key '{key}': expected a list, got {type(value).__name__} {value!r}")
    raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _check_range(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"config key '{key}': {value!r} is not allowed; allowed values: {allowed}")
    lo, hi, lo_open = meta.get("lo"), meta.get("hi"), meta.get("lo_open")
    if lo is None and hi is None:
        return
    below = value <= lo if lo_open else value < lo
    if below or value > hi:
        left = "(" if lo_open else "["
        raise ConfigError(f"config key '{key}': {value} is out of range; allowed: {left}{lo}, {hi}]")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.')}' must be a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        key = prefix + unknown[0]
        raise ConfigError(f"unknown config key '{key}'; allowed keys here: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        key = prefix + name
        tp = hints[name]
        if name not in data:
            continue
        if isinstance(tp, type) and is_dataclass(tp):
            values[name] = _build(tp, data[name], key + ".")
            continue
        value = _coerce(tp, data[name], key)
        _check_range(key, value, f.metadata)
        values[name] = value
    for name, f in known.items():
        if name not in values and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"config key '{prefix + name}' is required")
    obj = cls(**values)
    _validate(obj, prefix)
    return obj


def _validate(obj: Any, prefix: str) -> None:
    """Cross-field rules that a single key's range cannot express."""
    if isinstance(obj, MarketSettings):
        if not obj.symbols:
            raise ConfigError(f"config key '{prefix}symbols': at least one symbol is required")
        for i, s in enumerate(obj.symbols):
            if not SYMBOL_RE.match(s):
                raise ConfigError(f"config key '{prefix}symbols[{i}]': unknown symbol {s!r}; allowed: {SYMBOL_ALLOWED}")
        if len(set(obj.symbols)) != len(obj.symbols):
            raise ConfigError(f"config key '{prefix}symbols': a symbol is listed twice: {list(obj.symbols)}")
    if isinstance(obj, GateSettings):
        entry = min(obj.long_entry_strength, obj.short_entry_strength)
        if obj.exit_strength > entry:
            raise ConfigError(
                f"config key '{prefix}exit_strength': {obj.exit_strength} must not exceed the smaller entry "
                f"threshold ({entry}): hysteresis keeps a position with a weaker signal than opened it")
    if isinstance(obj, ModelSettings) and obj.retrain.enabled:
        r = obj.retrain
        if (r.model or obj.name) == "baseline":
            raise ConfigError(f"config key '{prefix}retrain.model': [model] name is 'baseline', which has nothing "
                              f"to train; name a trainable model, one of {', '.join(MODELS[1:])}")
        if r.interval_bars == 0 and not r.on_alarm:
            raise ConfigError(f"config key '{prefix}retrain.interval_bars': 0 with on_alarm = false never retrains; "
                              "set interval_bars above 0, on_alarm = true, or enabled = false")
    if isinstance(obj, StateSettings) and obj.reduce_drawdown > obj.halt_drawdown:
        raise ConfigError(f"config key '{prefix}reduce_drawdown': {obj.reduce_drawdown} must not exceed "
                          f"'{prefix}halt_drawdown' ({obj.halt_drawdown})")
    if isinstance(obj, (FeedSettings, ExchangeSettings)):
        for name in ("ws_url", "rest_url"):
            if hasattr(obj, name):
                _check_no_credentials(f"{prefix}{name}", getattr(obj, name))
    if isinstance(obj, FeedSettings):
        for name in ("ws_url", "rest_url"):
            url = getattr(obj, name)
            schemes = ("ws://", "wss://") if name == "ws_url" else ("http://", "https://")
            if not url.startswith(schemes):
                raise ConfigError(f"config key '{prefix}{name}': {url!r} must start with {' or '.join(schemes)}")
    if isinstance(obj, NotifySettings):
        for name in ("webhook_url", "telegram_api_url"):
            _check_no_credentials(f"{prefix}{name}", getattr(obj, name))
        check_notify_settings(obj, prefix)
    if isinstance(obj, ExchangeSettings) and obj.rest_url and not obj.rest_url.startswith(("http://", "https://")):
        raise ConfigError(f"config key '{prefix}rest_url': {obj.rest_url!r} must be empty or start with "
                          "http:// or https://")


def _check_no_credentials(key: str, url: str) -> None:
    """ConfigError if ``url`` carries credentials (``user:password@host``): the config is stored with the run
    in the trade log, and API keys come only from the environment.  The message never repeats the URL."""
    try:
        parts = urlsplit(url)
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        raise ConfigError(f"config key '{key}': not a valid URL") from None
    if has_credentials:
        raise ConfigError(f"config key '{key}': the URL holds credentials (user:password@); the config is stored "
                          f"with the run in the trade log, so give the URL without them ({ENV_HINT})")


# Sections that do not change what a run decides (a run resumed with other values is the same run).
RUN_NEUTRAL_SECTIONS = ("api", "notify")


def config_changes(stored_json: str, current_json: str) -> list[str]:
    """Dotted keys whose value differs between a run's stored config and the current one.

    A key the stored snapshot lacks (it was added by a later version of the bot)
    counts as unchanged when the current value is its default: upgrading the bot
    must not orphan a run whose settings did not change.  A key only the stored
    snapshot has (since removed) counts as a change.
    """
    stored, current = json.loads(stored_json), json.loads(current_json)
    defaults = json.loads(Settings().to_json())
    changes: list[str] = []

    def walk(old: Any, new: Any, default: Any, prefix: str) -> None:
        if isinstance(new, dict) and isinstance(old, dict):
            for k in sorted(set(old) | set(new)):
                key = prefix + k
                if key in RESUME_NEUTRAL_KEYS:
                    continue
                if k not in new:
                    changes.append(key)
                elif k not in old:
                    if new[k] != (default or {}).get(k):
                        changes.append(key)
                else:
                    walk(old[k], new[k], (default or {}).get(k) if isinstance(default, dict) else None, key + ".")
        elif old != new:
            changes.append(prefix.rstrip("."))

    walk(stored, current, defaults, "")
    # Serving the dashboard changes nothing a run decides: turning it on or off keeps the run.
    return [c for c in changes if c.split(".")[0] not in RUN_NEUTRAL_SECTIONS]


def load_settings(path: str | Path | None) -> Settings:
    """Load and validate a config file; ``None`` gives the embedded defaults."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    return parse_settings(text, source=str(p))


def parse_settings(text: str, source: str = "<config>") -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
    check_config_data_has_no_secrets(data)
    return _build(Settings, data, "")


def _allowed(meta: typing.Mapping[str, Any]) -> str:
    if meta.get("choices") is not None:
        return ", ".join(str(c) if c != "" else '""' for c in meta["choices"])   # an empty choice shown as ""
    if meta.get("lo") is None:
        return ""
    return f"{'(' if meta.get('lo_open') else '['}{meta['lo']}, {meta['hi']}]"


def describe_keys(cls: type = Settings, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, default, allowed, doc) for every key: the source of the README's config table."""
    rows: list[tuple[str, str, str, str]] = []
    hints = typing.get_type_hints(cls)
    default_obj = cls()
    for f in fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and is_dataclass(tp):
            rows.extend(describe_keys(tp, prefix + f.name + "."))
            continue
        rows.append((prefix + f.name, json.dumps(_plain(getattr(default_obj, f.name))), _allowed(f.metadata),
                     f.metadata.get("doc", "")))
    return rows


__all__ = [
    "Settings", "RunSettings", "MarketSettings", "FeedSettings", "ModelSettings", "BaselineModelSettings",
    "CnnGruSettings", "LstmSettings", "KnnSettings", "FusionSettings", "MultiAssetSettings", "TrainSettings", "MODELS",
    "RetrainSettings",
    "RecoverySettings", "WatchdogSettings", "RiskSettings", "GateSettings", "SizingSettings", "VarSettings",
    "StateSettings", "PaperSettings",
    "ExchangeSettings", "ExecutionSettings", "ForecastSettings", "SkillSettings", "CalibrationSettings",
    "MonitorSettings", "NotifySettings",
    "load_settings", "parse_settings", "describe_keys", "config_changes", "TIMEFRAMES_MS", "RESUME_NEUTRAL_KEYS",
]

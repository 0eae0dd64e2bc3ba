"""The daemon's side of retraining: which version serves, when a retrain starts, and the swap at a bar boundary.

    after bar t is decided:  schedule.retrain_due? ──► models row 'training' (committed WITH bar t)
    after bar t is committed: launch ``python -m bot.retrain.worker`` (asyncio subprocess: never the loop's
                              thread, never the engine's)
    before each bar:         worker done? ──► its verdict in the row ('accepted' / 'rejected' / 'failed')
    before bar due = t + apply_after_bars: wait for the worker if it still runs; accepted ──► load and verify the
                              checkpoint ──► swap the predictor; the swap's rows ('serving' moves) are committed
                              WITH that bar, its first one

Crash safety: the models table is the source of truth and its 'serving' row only changes in a bar's
transaction, so a restart serves exactly the version the last committed bar used.  A row still 'training'
at a restart is run again (same job, same data: training is deterministic on the CPU), an 'accepted' one
waits for its due bar; the temporary files a killed worker left are removed.  The swap bar is fixed when
the retrain starts, so a restarted run swaps at the same bar as one that never stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.errors import ConfigError
from bot.retrain import checkpoints
from bot.retrain.job import RetrainJob, plan_ranges
from bot.retrain.schedule import fresh_alarms, retrain_due
from bot.store.models import ModelVersion, Statement, insert_statement, served_statement, swap_statements
from bot.store.trade_store import TradeStore
from bot.timefmt import utc_minute
from strategies.events import Forecast
from strategies.registry import assess
from strategies.versioned import VersionedPredictor

log = logging.getLogger("bot.retrain")

POLL_S = 0.05


def _now_ms() -> int:
    return int(time.time() * 1000)


def first_version(settings: Settings) -> ModelVersion:
    """Version 1: the model the config names."""
    m = settings.model
    sha = checkpoints.sha256_of(m.checkpoint) if m.checkpoint and Path(m.checkpoint).is_file() else ""
    return ModelVersion(1, m.name, "serving", "config", checkpoint=m.checkpoint, checkpoint_sha256=sha,
                        settings=json.dumps(json.loads(settings.to_json())["model"], sort_keys=True),
                        created_ms=_now_ms())


def check_folder(settings: Settings) -> Path:
    """The retrained checkpoints' folder, created; ConfigError naming the key if this user cannot write there."""
    folder = checkpoints.folder_for(settings.model.retrain.checkpoint_dir, settings.run.db)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"config key 'model.retrain.checkpoint_dir': cannot write checkpoints to {folder} "
                          f"({exc.strerror or exc}); give a folder this user may write") from exc
    return folder


class FixedVersion:
    """One version for the whole run (a backtest): its row is written with the first bar, each bar names it."""

    def __init__(self, run_id: str, row: ModelVersion) -> None:
        self.run_id, self.row, self._written = run_id, row, False

    async def bar_begins(self, bar_ms: int) -> None:
        return None

    def bar_decided(self, bar_ms: int, forecasts: Sequence[Forecast]) -> tuple[int | None, tuple[Statement, ...]]:
        rows: tuple[Statement, ...] = () if self._written else (insert_statement(self.run_id, self.row),)
        self._written = True
        return self.row.version, (*rows, served_statement(self.run_id, bar_ms, self.row.version))

    def bar_committed(self, bar_ms: int) -> None:
        return None


class ModelKeeper:
    """The serving version of a daemon's run, its retrains and their swaps (``Engine.models``)."""

    def __init__(self, settings: Settings, store: TradeStore, run_id: str, predictor: VersionedPredictor,
                 versions: list[ModelVersion], first_ms: int | None) -> None:
        self.settings, self.store, self.run_id = settings, store, run_id
        self.predictor = predictor
        self.r = settings.model.retrain
        self.tf = settings.market.timeframe_ms
        self.folder = checkpoints.folder_for(self.r.checkpoint_dir, settings.run.db)
        self.next_version = max((v.version for v in versions), default=0) + 1
        retrains = [v.requested_bar_ms for v in versions if v.requested_bar_ms is not None]
        serving = next(v for v in versions if v.status == "serving")
        self.since_ms: int | None = max(retrains) if retrains else serving.first_bar_ms
        # The serving model's checkpoint ('' for the baseline): the worker scores it beside the candidate.
        self.serving_checkpoint = serving.checkpoint if serving.kind != "baseline" else ""
        self.first_ms = first_ms
        self.pending: RetrainJob | None = None        # started, not yet swapped in or turned down
        self.verdict: dict[str, Any] | None = None    # the pending job's result once known
        self.proc: asyncio.subprocess.Process | None = None
        self._launch_after: int | None = None
        self._swap: tuple[Statement, ...] = ()
        self.swaps: list[tuple[int, int]] = []        # (bar, version) swapped in by this session
        self.retrains: list[dict[str, Any]] = []      # verdicts seen by this session
        self.bars_while_training = 0                  # bars decided while a worker ran (this session)
        self.held_s = 0.0                             # seconds due bars waited for a worker (this session)

    # -- start-up ------------------------------------------------------------------------------------

    @staticmethod
    async def serving_model(settings: Settings, store: TradeStore, run_id: str, configured: Any) -> Any:
        """The raw predictor of the version ``run_id`` serves: ``configured`` (a new run, or the config's version),
        or its retrained checkpoint, verified.  The daemon asks before it opens a session, so that a retrained
        checkpoint gone or damaged since the last stop stops start-up with the reason and nothing opened."""
        serving = next((v for v in await store.models(run_id) if v.status == "serving"), None)
        if serving is None or serving.trigger == "config":
            return configured
        from strategies.predictor import TorchPredictor, resolve_device

        device = resolve_device(settings.model.device)
        try:
            ckpt = await asyncio.to_thread(checkpoints.load_verified, serving.checkpoint, serving.checkpoint_sha256,
                                           settings, serving.kind, device)
        except ConfigError as exc:
            raise ConfigError(f"run {run_id!r} serves retrained model version {serving.version}, whose checkpoint "
                              f"cannot be served: {exc}; restore the file, or pass a new --run") from exc
        log.info("serving model version %d (%s, retrained: %s)", serving.version, serving.kind, serving.checkpoint)
        return TorchPredictor(ckpt, device, cuda_graph=settings.model.cuda_graph,
                              sigma_floor=settings.model.baseline.sigma_floor)

    @classmethod
    async def open(cls, settings: Settings, store: TradeStore, run_id: str, configured: Any,
                   logged: Sequence[Forecast], raw: Any = None) -> ModelKeeper:
        """The keeper of ``run_id``: version 1 recorded on a new run; the serving version's predictor (``raw``
        from :meth:`serving_model`, else loaded here), assessed from the ``logged`` forecasts; a pending
        retrain picked up again."""
        versions = await store.models(run_id)
        if not versions:   # a new run, or one logged before schema 4: the configured model, from the first bar
            logged_bars = await store.bar_range(run_id)
            first = first_version(settings)
            await store.record_model(run_id, replace(first, first_bar_ms=logged_bars[0] if logged_bars else None))
            versions = await store.models(run_id)
        serving = next((v for v in versions if v.status == "serving"), None)
        if serving is None:
            raise ConfigError(f"run {run_id!r}: the models table has no serving version")
        if raw is None:
            raw = await cls.serving_model(settings, store, run_id, configured)
        keeper = cls(settings, store, run_id, VersionedPredictor(assess(settings, raw, logged), serving.version),
                     versions, await store.first_candle_ms(run_id))
        if settings.model.retrain.enabled or any(v.status in ("training", "accepted") for v in versions):
            await keeper._resume(versions)
        return keeper

    async def _resume(self, versions: list[ModelVersion]) -> None:
        check_folder(self.settings)
        checkpoints.remove_partials(self.folder)
        open_rows = [v for v in versions if v.status in ("training", "accepted")]
        if not open_rows:
            return
        row = open_rows[-1]
        job_path = checkpoints.paths(self.folder, row.version)["job"]
        if not job_path.is_file():
            await self.store.update_model(self.run_id, row.version, status="failed", decided_ms=_now_ms(),
                                          reason=f"its job file {job_path} is gone; not run again")
            return
        self.pending = RetrainJob.from_json(job_path.read_text(encoding="utf-8"))
        if row.status == "accepted":
            self.verdict = {"status": "accepted", "checkpoint": row.checkpoint, "sha256": row.checkpoint_sha256}
            log.info("retrain v%d accepted before the stop: swapped in at bar %s", row.version,
                     utc_minute(row.due_bar_ms))
            return
        result = Path(self.pending.result)
        if result.is_file():
            await self._ingest(json.loads(result.read_text(encoding="utf-8")))
        else:
            log.warning("retrain v%d was running when the daemon stopped: running it again", row.version)
            await self._launch(self.pending)

    # -- the engine's hooks -------------------------------------------------------------------------

    async def bar_begins(self, bar_ms: int) -> None:
        job = self.pending
        if job is None:
            return
        if self.verdict is None and self.proc is not None and self.proc.returncode is not None:
            await self._collect()
        if bar_ms < job.due_bar_ms:
            return
        if self.verdict is None:
            log.warning("bar %s: holding the bar until retrain v%d ends (due at this bar)", utc_minute(bar_ms),
                        job.version)
            held = time.perf_counter()
            while self.proc is None and self.pending is job and self.verdict is None:   # still being launched
                await asyncio.sleep(POLL_S)
            if self.proc is not None:
                await self.proc.wait()
                await self._collect()
            self.held_s += time.perf_counter() - held
        if self.pending is job:      # not turned down or failed meanwhile
            await self._apply(bar_ms, job)

    def bar_decided(self, bar_ms: int, forecasts: Sequence[Forecast]) -> tuple[int | None, tuple[Statement, ...]]:
        version = self.predictor.version
        if self.proc is not None and self.proc.returncode is None:
            self.bars_while_training += 1
        rows = list(self._swap) or [served_statement(self.run_id, bar_ms, version)]
        self._swap = ()
        if self.since_ms is None:
            self.since_ms = bar_ms
        if self.first_ms is None:
            self.first_ms = bar_ms
        if self.r.enabled:
            trigger = retrain_due(bar_ms, self.tf, self.since_ms, self.r.interval_bars, self.r.on_alarm,
                                  fresh_alarms(bar_ms, forecasts), self.pending is not None)
            if trigger is not None:
                job = self._plan(bar_ms, trigger.kind)
                log.warning("retrain v%d (%s) after bar %s: %s; it may serve from bar %s", job.version, trigger.kind,
                            utc_minute(bar_ms), trigger.detail, utc_minute(job.due_bar_ms))
                rows.append(insert_statement(self.run_id, ModelVersion(
                    job.version, job.kind, "training", trigger.kind, requested_bar_ms=bar_ms,
                    due_bar_ms=job.due_bar_ms, train_from_ms=job.train_from_ms, train_to_ms=job.holdout_from_ms,
                    holdout_from_ms=job.holdout_from_ms, holdout_to_ms=job.holdout_to_ms, checkpoint=job.checkpoint,
                    settings=json.dumps(job.summary(), sort_keys=True), reason=trigger.detail,
                    created_ms=_now_ms())))
                self._write_job(job)      # before the bar's commit: a row 'training' always has its job file
                self.pending, self.verdict, self.since_ms = job, None, bar_ms
                self._launch_after = bar_ms
        return version, tuple(rows)

    def bar_committed(self, bar_ms: int) -> None:
        # The retrain's row and job went in with the bar that started it; a bar held in memory (the trade log not
        # writable) is not committed, so the launch waits for the first bar committed after it.
        if self._launch_after is not None and bar_ms >= self._launch_after and self.pending is not None:
            self._launch_after = None
            self._launch_task = asyncio.create_task(self._launch(self.pending), name="retrain-launch")

    def session_stats(self) -> dict[str, Any]:
        return {"bars_while_training": self.bars_while_training, "held_s": round(self.held_s, 3),
                "retrains": list(self.retrains), "swaps": list(self.swaps)}

    async def close(self) -> None:
        """Stop a running worker (its row stays 'training': the next start runs it again)."""
        task = getattr(self, "_launch_task", None)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if self.proc is not None and self.proc.returncode is None:
            log.info("stopping retrain v%d (it runs again at the next start)", self.pending.version
                     if self.pending else 0)
            self.proc.kill()
            await self.proc.wait()

    # -- a retrain's life ---------------------------------------------------------------------------

    def _plan(self, bar_ms: int, trigger: str) -> RetrainJob:
        s = self.settings
        version = self.next_version
        self.next_version += 1
        kind = self.r.model or s.model.name
        data_from, train_from, holdout_from, holdout_to = plan_ranges(
            self.r, bar_ms, self.tf, self.first_ms if self.first_ms is not None else bar_ms, s.market.window)
        p = checkpoints.paths(self.folder, version)
        return RetrainJob(self.run_id, version, kind, trigger, bar_ms, bar_ms + self.r.apply_after_bars * self.tf,
                          train_from, holdout_from, holdout_to, data_from, str(s.run.db), s.to_json(),
                          self.serving_checkpoint, self.predictor.name, str(p["checkpoint"]), str(p["result"]))

    def _write_job(self, job: RetrainJob) -> None:
        p = checkpoints.paths(self.folder, job.version)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in (p["result"], p["checkpoint"]):   # of a version number a crash left unused
            stale.unlink(missing_ok=True)
        tmp = p["job"].with_name(p["job"].name + ".tmp")
        tmp.write_text(job.to_json(), encoding="utf-8")
        tmp.replace(p["job"])

    async def _launch(self, job: RetrainJob) -> None:
        p = checkpoints.paths(self.folder, job.version)
        try:
            with open(p["log"], "ab") as out:
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot.retrain.worker", str(p["job"]), stdin=asyncio.subprocess.DEVNULL,
                    stdout=out, stderr=asyncio.subprocess.STDOUT)
        except OSError as exc:
            await self._ingest({"status": "failed", "reason": f"the worker could not be started: {exc}"})
            return
        log.info("retrain v%d: worker process %d started (log %s)", job.version, self.proc.pid, p["log"])

    async def _collect(self) -> None:
        """The finished worker's result, recorded."""
        assert self.pending is not None and self.proc is not None
        result = Path(self.pending.result)
        if result.is_file():
            verdict = json.loads(result.read_text(encoding="utf-8"))
        else:
            where = checkpoints.paths(self.folder, self.pending.version)["log"]
            verdict = {"status": "failed", "reason": f"the worker exited with code {self.proc.returncode} and "
                                                     f"no result (see {where})"}
        self.proc = None
        await self._ingest(verdict)

    async def _ingest(self, verdict: dict[str, Any]) -> None:
        assert self.pending is not None
        job = self.pending
        self.verdict = verdict
        self.retrains.append({"version": job.version, **verdict})
        values: dict[str, object] = {"status": verdict["status"], "reason": verdict.get("reason", ""),
                                     "decided_ms": _now_ms()}
        if "scores" in verdict:
            values.update(scores=json.dumps(verdict["scores"], sort_keys=True), checkpoint=verdict["checkpoint"],
                          checkpoint_sha256=verdict["sha256"], train_seconds=verdict["train_seconds"],
                          device=verdict["device"])
        await self.store.update_model(self.run_id, job.version, **values)
        (log.warning if verdict["status"] != "accepted" else log.info)(
            "retrain v%d %s: %s", job.version, verdict["status"], verdict.get("reason", ""))
        if verdict["status"] != "accepted":
            self.pending, self.verdict = None, None
            self._prune()

    async def _apply(self, bar_ms: int, job: RetrainJob) -> None:
        """Swap the accepted candidate in before ``bar_ms`` — or refuse it with the reason, the serving one staying."""
        verdict = self.verdict or {}
        self.pending, self.verdict = None, None
        if verdict.get("status") != "accepted":
            return
        from strategies.predictor import TorchPredictor, resolve_device

        s = self.settings
        try:
            device = resolve_device(s.model.device)
            ckpt = await asyncio.to_thread(checkpoints.load_verified, verdict["checkpoint"], verdict.get("sha256", ""),
                                           s, job.kind, device)
        except ConfigError as exc:
            log.error("retrain v%d refused at the swap, version %d keeps serving: %s", job.version,
                      self.predictor.version, exc)
            await self.store.update_model(self.run_id, job.version, status="rejected",
                                          reason=f"refused at the swap: {exc}"[:1000], decided_ms=_now_ms())
            self._prune()
            return
        raw = TorchPredictor(ckpt, device, cuda_graph=s.model.cuda_graph, sigma_floor=s.model.baseline.sigma_floor)
        self.serving_checkpoint = verdict["checkpoint"]
        self.predictor.swap(assess(s, raw), job.version)
        self._swap = swap_statements(self.run_id, bar_ms, self.tf, job.version)
        self.swaps.append((bar_ms, job.version))
        log.warning("model version %d (%s) serves from bar %s (this session: %d bar(s) decided while retrains ran, "
                    "due bars held %.1f s)", job.version, job.kind, utc_minute(bar_ms), self.bars_while_training,
                    self.held_s)
        self._prune()

    def _prune(self) -> None:
        protect = {self.predictor.version}
        if self.pending is not None:
            protect.add(self.pending.version)
        checkpoints.prune(self.folder, self.r.keep_checkpoints, protect)

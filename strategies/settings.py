"""The ``[model]`` and ``[forecast]`` sections of ``config.toml``: which predictor, its checkpoint, each
model's shape, and how its forecasts are scored (skill, calibration, monitor).

The hyperparameters here are what ``bot train`` builds a model with; a trained
checkpoint carries its own copy, and the engine refuses a checkpoint whose
model, features or symbols disagree with this section (see
``strategies.checkpoint``).  Training settings (``[model.train]``) only matter
to ``bot train`` and ``bot evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strategies.configkeys import _key

MODELS = ("baseline", "cnn_gru", "lstm", "knn", "fusion", "multi_asset")


@dataclass(frozen=True, slots=True)
class BaselineModelSettings:
    momentum_bars: int = _key("bars averaged for the momentum estimate of mu", default=24, lo=1, hi=1000)
    mu_shrink: float = _key("factor applied to the mean recent return to give mu", default=0.5, lo=-5.0, hi=5.0)
    ewma_lambda: float = _key("RiskMetrics decay of the EWMA variance behind sigma", default=0.94,
                              lo=0.5, hi=0.9999)
    sigma_floor: float = _key("smallest sigma the model reports", default=1e-5, lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True, slots=True)
class CnnGruSettings:
    lookback: int = _key("bars of features the network reads (up to ~2,200 = 90 days)", default=128, lo=8, hi=4096)
    conv_channels: int = _key("channels of each 1-D convolution", default=32, lo=1, hi=1024)
    conv_layers: int = _key("convolution + max-pool blocks", default=2, lo=1, hi=6)
    kernel_size: int = _key("convolution kernel width, bars", default=5, lo=1, hi=63)
    pool: int = _key("max-pool width after each convolution", default=2, lo=1, hi=8)
    gru_hidden: int = _key("hidden units of each GRU layer", default=64, lo=1, hi=2048)
    gru_layers: int = _key("stacked GRU layers", default=3, lo=1, hi=8)
    dropout: float = _key("dropout between GRU layers and before the head", default=0.2, lo=0.0, hi=0.9)
    horizon: int = _key("bars ahead the head forecasts, one (mu, sigma) per step; the engine trades step 1",
                        default=1, lo=1, hi=168)


@dataclass(frozen=True, slots=True)
class LstmSettings:
    lookback: int = _key("bars of features the network reads", default=30, lo=4, hi=4096)
    hidden1: int = _key("units of the first LSTM layer", default=64, lo=1, hi=2048)
    hidden2: int = _key("units of the second LSTM layer", default=32, lo=1, hi=2048)
    dropout: float = _key("dropout after each LSTM layer", default=0.2, lo=0.0, hi=0.9)
    horizon: int = _key("bars ahead the head forecasts", default=1, lo=1, hi=168)


@dataclass(frozen=True, slots=True)
class KnnSettings:
    k: int = _key("neighbours averaged; 0: chosen by validation search over k_grid", default=0, lo=0, hi=100_000)
    k_grid: tuple[int, ...] = _key("candidate K for the validation search", default=(10, 25, 50, 100, 200, 400))
    lookback: int = _key("bars the analog feature vector summarises", default=48, lo=26, hi=4096)
    max_library: int = _key("most training bars kept as analogs (the latest ones)", default=200_000,
                            lo=100, hi=10_000_000)


@dataclass(frozen=True, slots=True)
class FusionSettings:
    method: str = _key("late: a volatility-dependent weight alpha; stacking: a meta-model fitted on the "
                       "validation fold", default="late", choices=("late", "stacking"))
    recurrent: str = _key("the recurrent member fused with knn", default="cnn_gru", choices=("cnn_gru", "lstm"))


@dataclass(frozen=True, slots=True)
class MultiAssetSettings:
    lookback: int = _key("bars of features each asset's expert reads", default=128, lo=8, hi=4096)
    expert_hidden: int = _key("hidden units of each per-asset expert GRU", default=32, lo=1, hi=1024)
    coordinator_hidden: int = _key("hidden units of the cross-asset coordinator", default=64, lo=1, hi=2048)
    dropout: float = _key("dropout in experts and coordinator", default=0.2, lo=0.0, hi=0.9)
    horizon: int = _key("bars ahead the head forecasts, per asset", default=1, lo=1, hi=168)


@dataclass(frozen=True, slots=True)
class TrainSettings:
    epochs: int = _key("most training epochs", default=30, lo=1, hi=10_000)
    patience: int = _key("stop after this many epochs without a better validation NLL", default=4, lo=1, hi=1000)
    batch_size: int = _key("samples per optimiser step", default=256, lo=1, hi=65_536)
    learning_rate: float = _key("Adam learning rate", default=1e-3, lo=0.0, hi=1.0, lo_open=True)
    weight_decay: float = _key("AdamW weight decay", default=1e-4, lo=0.0, hi=1.0)
    max_steps_per_epoch: int = _key("optimiser steps per epoch at most (random samples each epoch); 0: all",
                                    default=400, lo=0, hi=10_000_000)
    val_fraction: float = _key("latest share of the training range held out for early stopping and tuning",
                               default=0.15, lo=0.01, hi=0.5)
    distribution: str = _key("likelihood trained on", default="gaussian", choices=("gaussian", "student_t"))
    student_t_df: float = _key("degrees of freedom of the Student-t likelihood", default=5.0, lo=2.1, hi=1000.0)
    down_weight: float = _key("loss weight of bars whose outcome is a down-move (1: symmetric)", default=1.0,
                              lo=0.1, hi=10.0)
    augment: bool = _key("causal augmentation: time-axis scaling and noise in calm stretches", default=False)
    augment_scale: float = _key("largest time-axis stretch or squeeze of an augmented window", default=0.05,
                                lo=0.0, hi=0.5)
    augment_noise: float = _key("noise (in feature standard deviations) added in calm stretches", default=0.05,
                                lo=0.0, hi=1.0)
    mc_dropout_samples: int = _key("forward passes with dropout on to widen sigma (0: off)", default=0, lo=0, hi=1000)
    sigma_floor_pct: float = _key("smallest sigma a network reports, percent log return", default=0.01,
                                  lo=0.0, hi=100.0, lo_open=True)
    seed: int = _key("random seed (training is deterministic on CPU)", default=7, lo=0, hi=2**31 - 1)


@dataclass(frozen=True, slots=True)
class RetrainSettings:
    """``[model.retrain]``: the daemon refits its model in a separate process and swaps it in at a bar boundary
    when it beats the serving one on recent held-out bars (``bot/retrain/``, ``strategies/validation.py``)."""

    enabled: bool = _key("retrain the served model while the daemon runs (bot run only)", default=False)
    model: str = _key("model kind to train; empty: [model] name (which must then be a trainable model)",
                      default="", choices=("", *MODELS[1:]))
    interval_bars: int = _key("retrain every this many bars after the last retrain started (0: only on an alarm)",
                              default=720, lo=0, hi=1_000_000)
    on_alarm: bool = _key("also retrain when the skill monitor fires for any symbol", default=True)
    window: str = _key("training window: rolling (the last window_bars bars) or expanding (every bar since "
                       "the run's first, at least window_bars)", default="rolling", choices=("rolling", "expanding"))
    window_bars: int = _key("bars a retrain trains on (rolling), before the held-out bars", default=4320,
                            lo=50, hi=10_000_000)
    holdout_bars: int = _key("most recent bars held out of training: the gate scores candidate and serving "
                             "model on them", default=168, lo=10, hi=100_000)
    apply_after_bars: int = _key("the candidate may first decide this many bars after the bar its retrain "
                                 "started at; a slower retrain holds that bar until it ends (a restarted run "
                                 "swaps at the same bar)", default=2, lo=1, hi=10_000)
    nll_margin: float = _key("the candidate's mean NLL on the held-out bars must be lower than the serving "
                             "model's by at least this, nats", default=0.005, lo=0.0, hi=10.0)
    coverage_tolerance: float = _key("the candidate's calibration error (|coverage - nominal| of the 68 % and "
                                     "95 % intervals, summed) may exceed the serving model's by at most this",
                                     default=0.05, lo=0.0, hi=2.0)
    skill_tolerance: float = _key("the candidate's demonstrated skill scale on the held-out bars may be lower "
                                  "than the serving model's by at most this", default=0.0, lo=0.0, hi=100.0)
    checkpoint_dir: str = _key("folder of retrained checkpoints; empty: <trade log>.models beside the trade log",
                               default="")
    keep_checkpoints: int = _key("checkpoints kept in the folder (the serving one always stays)", default=5,
                                 lo=1, hi=10_000)
    device: str = _key("where training runs: auto uses CUDA when present", default="auto",
                       choices=("auto", "cpu", "cuda"))
    threads: int = _key("torch threads of the training process (0: torch's default); 1 leaves the other cores "
                        "to the engine", default=1, lo=0, hi=256)


@dataclass(frozen=True, slots=True)
class ModelSettings:
    name: str = _key("predictor", default="baseline", choices=MODELS)
    checkpoint: str = _key("trained model file from `bot train` (needed by every model but baseline)", default="")
    device: str = _key("where inference runs: auto uses CUDA when present", default="auto",
                       choices=("auto", "cpu", "cuda"))
    cuda_graph: bool = _key("capture the per-bar forward pass as a CUDA graph (CUDA only)", default=True)
    baseline: BaselineModelSettings = field(default_factory=BaselineModelSettings,
                                            metadata={"doc": "baseline predictor"})
    cnn_gru: CnnGruSettings = field(default_factory=CnnGruSettings, metadata={"doc": "CNN + stacked GRU"})
    lstm: LstmSettings = field(default_factory=LstmSettings, metadata={"doc": "stacked LSTM"})
    knn: KnnSettings = field(default_factory=KnnSettings, metadata={"doc": "KNN historical analogs"})
    fusion: FusionSettings = field(default_factory=FusionSettings, metadata={"doc": "recurrent + knn fusion"})
    multi_asset: MultiAssetSettings = field(default_factory=MultiAssetSettings,
                                            metadata={"doc": "per-asset experts + coordinator"})
    train: TrainSettings = field(default_factory=TrainSettings, metadata={"doc": "training"})
    retrain: RetrainSettings = field(default_factory=RetrainSettings, metadata={"doc": "retraining"})


@dataclass(frozen=True, slots=True)
class SkillSettings:
    enabled: bool = _key("scale each model's mu by its demonstrated out-of-sample skill (false: mu at face value)",
                         default=True)
    halflife_bars: int = _key("half-life of the weighted regression of realised returns on mu", default=720,
                              lo=10, hi=1_000_000)
    z: float = _key("the scale is the regression slope minus this many standard errors (clipped at 0)",
                    default=2.0, lo=0.0, hi=10.0)
    min_bars: int = _key("effective outcomes needed before any skill counts", default=168, lo=1, hi=1_000_000)
    max_scale: float = _key("cap on the scale applied to mu", default=2.0, lo=0.0, hi=100.0, lo_open=True)
    seed_bars: int = _key("a checkpoint's validation range seeds the regression with at most this many outcomes' "
                          "weight (0: no seed)", default=720, lo=0, hi=1_000_000)


@dataclass(frozen=True, slots=True)
class CalibrationSettings:
    enabled: bool = _key("recalibrate sigma and the 68 %/95 % intervals online (false: the model's own N(mu, "
                         "sigma^2))", default=True)
    step: float = _key("step of the online quantile trackers of the 68 % and 95 % intervals (log units)",
                       default=0.02, lo=0.0, hi=1.0, lo_open=True)
    halflife_bars: int = _key("half-life of the variance scale (EW mean of squared standardised errors)",
                              default=720, lo=10, hi=1_000_000)


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    enabled: bool = _key("run the skill monitor: a CUSUM alarm stops a model's new exposure until skill is shown "
                         "again", default=True)
    nll_allowance: float = _key("NLL excess over the EWMA baseline tolerated per bar, nats", default=0.02,
                                lo=0.0, hi=10.0)
    nll_threshold: float = _key("the NLL CUSUM fires above this", default=20.0, lo=0.0, hi=1e6, lo_open=True)
    pit_rate: float = _key("95 % interval misses tolerated per bar (nominal 0.05)", default=0.10, lo=0.05,
                           hi=1.0, lo_open=True)
    pit_threshold: float = _key("the PIT CUSUM fires above this", default=8.0, lo=0.0, hi=1e6, lo_open=True)
    ewma_lambda: float = _key("decay of the RiskMetrics EWMA baseline the NLL is compared with", default=0.94,
                              lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    skill: SkillSettings = field(default_factory=SkillSettings, metadata={"doc": "skill"})
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings, metadata={"doc": "calibration"})
    monitor: MonitorSettings = field(default_factory=MonitorSettings, metadata={"doc": "monitor"})

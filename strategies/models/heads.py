"""Distribution heads and their likelihoods: hidden state → (μ, σ) of the next ``h`` log returns, percent.

Every head returns ``sigma`` as the predictive *standard deviation* (the
forecaster contract), floored at ``sigma_floor`` percent.  A Student-t head
parametrises its scale internally and reports ``sd = scale·sqrt(df / (df − 2))``;
its :meth:`~StudentTHead.nll` converts back, so training and serving see one
meaning of σ whatever the likelihood.

Losses take ``mu``, ``sigma``/``scale`` and ``y`` of one shape (``(B, h)`` or
``(B, A, h)``) and optional per-element ``weights`` of that shape; the weighted
loss is ``mean(w · nll)`` (``"sum"``: ``sum(w · nll)``), with the full constant
(``0.5·log 2π`` for the Gaussian) so values compare with any other model's NLL.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _reduce(nll: torch.Tensor, weights: torch.Tensor | None, reduction: str) -> torch.Tensor:
    if weights is not None:
        nll = nll * weights
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum()
    if reduction == "none":
        return nll
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def gaussian_nll_loss(mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
                      reduction: str = "mean") -> torch.Tensor:
    """Negative log density of ``y`` under N(mu, sigma²), weighted and reduced (nats per element)."""
    z = (y - mu) / sigma
    return _reduce(0.5 * z * z + torch.log(sigma) + _HALF_LOG_2PI, weights, reduction)


def student_t_nll_loss(mu: torch.Tensor, scale: torch.Tensor, y: torch.Tensor, df: float,
                       weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Negative log density of ``y`` under a Student-t(df, loc=mu, scale), weighted and reduced."""
    z = (y - mu) / scale
    const = math.lgamma(0.5 * (df + 1.0)) - math.lgamma(0.5 * df) - 0.5 * math.log(df * math.pi)
    nll = 0.5 * (df + 1.0) * torch.log1p(z * z / df) + torch.log(scale) - const
    return _reduce(nll, weights, reduction)


def student_t_sd_factor(df: float) -> float:
    """sd / scale of a Student-t with ``df`` > 2 degrees of freedom: sqrt(df / (df − 2))."""
    if df <= 2.0:
        raise ValueError(f"a Student-t needs df > 2 for a finite standard deviation, got {df}")
    return math.sqrt(df / (df - 2.0))


def student_t_sd(scale: torch.Tensor, df: float) -> torch.Tensor:
    """Standard deviation of a Student-t with this ``scale``."""
    return scale * student_t_sd_factor(df)


def student_t_scale(sd: torch.Tensor, df: float) -> torch.Tensor:
    """Scale of the Student-t whose standard deviation is ``sd``."""
    return sd / student_t_sd_factor(df)


def down_weights(y: torch.Tensor, down_weight: float) -> torch.Tensor | None:
    """Per-element loss weights: ``down_weight`` where the target is a down-move (y < 0), else 1; None if 1."""
    if down_weight == 1.0:
        return None
    return torch.where(y < 0, torch.full_like(y, down_weight), torch.ones_like(y))


def _softplus_inverse(v: float) -> float:
    return v + math.log(-math.expm1(-v)) if v < 20.0 else v


class GaussianHead(nn.Module):
    """``(..., in_features)`` → mu, sigma each ``(..., horizon)``: a Linear layer, softplus + floor for sigma."""

    def __init__(self, in_features: int, horizon: int, sigma_floor: float) -> None:
        super().__init__()
        if sigma_floor <= 0:
            raise ValueError(f"sigma_floor must be positive, got {sigma_floor}")
        self.horizon = horizon
        self.sigma_floor = float(sigma_floor)
        self.linear = nn.Linear(in_features, 2 * horizon)

    def _sd_factor(self) -> float:
        return 1.0

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.linear(h)
        mu, raw = out[..., : self.horizon], out[..., self.horizon:]
        # The softplus gives the distribution's own scale (above its floor); the floor applies to the reported sd.
        return mu, F.softplus(raw) * self._sd_factor() + self.sigma_floor

    @torch.no_grad()
    def calibrate(self, target_sd: float) -> None:
        """Start from mu ≈ 0 and sigma ≈ ``target_sd`` (percent), e.g. the training targets' spread."""
        scale = max((target_sd - self.sigma_floor) / self._sd_factor(), 1e-3)
        self.linear.bias[: self.horizon].zero_()
        self.linear.bias[self.horizon:].fill_(_softplus_inverse(scale))
        self.linear.weight.mul_(0.1)

    def nll(self, mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
            reduction: str = "mean") -> torch.Tensor:
        """This head's likelihood: Gaussian NLL of ``y``."""
        return gaussian_nll_loss(mu, sigma, y, weights, reduction)


class StudentTHead(GaussianHead):
    """A Student-t head with fixed ``df``: same outputs (mu, sd), NLL of a Student-t with that sd."""

    def __init__(self, in_features: int, horizon: int, sigma_floor: float, df: float) -> None:
        super().__init__(in_features, horizon, sigma_floor)
        self.df = float(df)
        student_t_sd_factor(self.df)      # validates df > 2

    def _sd_factor(self) -> float:
        return student_t_sd_factor(self.df)

    def nll(self, mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
            reduction: str = "mean") -> torch.Tensor:
        """Student-t NLL of ``y``, with the scale recovered from the reported sd."""
        return student_t_nll_loss(mu, student_t_scale(sigma, self.df), y, self.df, weights, reduction)


def make_head(distribution: str, in_features: int, horizon: int, sigma_floor: float,
              df: float = 5.0) -> GaussianHead:
    """The head for ``distribution`` ("gaussian" or "student_t"), as named in ``[model.train]``."""
    if distribution == "gaussian":
        return GaussianHead(in_features, horizon, sigma_floor)
    if distribution == "student_t":
        return StudentTHead(in_features, horizon, sigma_floor, df)
    raise ValueError(f"config key 'model.train.distribution': unknown {distribution!r}; allowed: gaussian, student_t")

"""Several assets at once: input gates per asset × feature, one expert GRU per asset, a cross-asset coordinator.

Shapes, for ``A`` assets in the fixed order the model was created with::

    x (B, A, L, F) ─ × gate (A, F), gate = 2·sigmoid(logits) ∈ (0, 2), 1 at start   learnable feature importance
      ─ expert_a: GRU(F → expert_hidden) over asset a's window → last step        h (B, A, He)
      ─ dropout ─ flatten (B, A·He) ─ coordinator: Linear → GELU → dropout        c (B, Hc)
      ─ head over [flattened h, c] → mu, sigma (B, A·h) → (B, A, h), percent

The coordinator and the head see every asset's summary, so asset i's forecast
can use asset j's recent moves (lead-lag); the gates say which inputs of which
asset matter (:meth:`MultiAssetNet.importance`).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from strategies.models.heads import GaussianHead, make_head
from strategies.models.neural import NeuralForecaster
from strategies.settings import MultiAssetSettings, TrainSettings


def _horizon(s: MultiAssetSettings) -> int:
    return int(s.horizon)


class MultiAssetNet(nn.Module):
    """(B, A, L, F) → (mu, sigma) each (B, A, h)."""

    def __init__(self, n_assets: int, n_features: int, s: MultiAssetSettings, horizon: int,
                 head: GaussianHead) -> None:
        super().__init__()
        if n_assets < 1:
            raise ValueError("the multi-asset model needs at least one symbol")
        self.lookback, self.horizon, self.n_assets = s.lookback, horizon, n_assets
        self.gate_logits = nn.Parameter(torch.zeros(n_assets, n_features))
        self.experts = nn.ModuleList(nn.GRU(n_features, s.expert_hidden, batch_first=True) for _ in range(n_assets))
        self.drop = nn.Dropout(s.dropout)
        self.coordinator = nn.Sequential(nn.Linear(n_assets * s.expert_hidden, s.coordinator_hidden), nn.GELU(),
                                         nn.Dropout(s.dropout))
        self.head = head

    def importance(self) -> torch.Tensor:
        """(A, F) input weights in (0, 2): how much each feature of each asset is let through."""
        return 2.0 * torch.sigmoid(self.gate_logits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x * self.importance()[None, :, None, :]
        hidden = torch.stack([expert(x[:, a])[0][:, -1] for a, expert in enumerate(self.experts)], dim=1)
        flat = self.drop(hidden).flatten(1)                           # (B, A·He)
        mu, sigma = self.head(torch.cat([flat, self.coordinator(flat)], dim=1))   # (B, A·h)
        shape = (x.shape[0], self.n_assets, self.horizon)
        return mu.reshape(shape), sigma.reshape(shape)


class MultiAssetForecaster(NeuralForecaster):
    """Per-asset experts and a coordinator over a fixed list of symbols (inputs (B, A, L, F))."""

    kind = "multi_asset"
    section = "multi_asset"
    settings_type = MultiAssetSettings
    aligned = True

    @classmethod
    def build_net(cls, s: MultiAssetSettings, train: TrainSettings, n_features: int,
                  n_symbols: int) -> MultiAssetNet:
        h = _horizon(s)
        head = make_head(train.distribution, n_symbols * s.expert_hidden + s.coordinator_hidden, n_symbols * h,
                         train.sigma_floor_pct, train.student_t_df)
        return MultiAssetNet(n_symbols, n_features, s, h, head)

    def importance(self) -> torch.Tensor:
        """(A, F) learned input weights, rows in :attr:`symbols` order."""
        return cast(MultiAssetNet, self.net).importance().detach().cpu()

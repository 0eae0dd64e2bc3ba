"""The classic baseline: two stacked LSTMs (64 / 32 units by default) with dropout → a (μ, σ) head.

Shapes::

    x (B, L, F) ─ LSTM(hidden1) → dropout ─ LSTM(hidden2) → dropout → last step (B, hidden2)
      ─ head → mu, sigma (B, h), percent log returns of the next h bars
"""

from __future__ import annotations

import torch
from torch import nn

from strategies.models.heads import GaussianHead, make_head
from strategies.models.neural import NeuralForecaster
from strategies.settings import LstmSettings, TrainSettings


class LstmNet(nn.Module):
    """(B, L, F) → (mu, sigma) each (B, h)."""

    def __init__(self, n_features: int, s: LstmSettings, head: GaussianHead) -> None:
        super().__init__()
        self.lookback, self.horizon = s.lookback, s.horizon
        self.lstm1 = nn.LSTM(n_features, s.hidden1, batch_first=True)
        self.lstm2 = nn.LSTM(s.hidden1, s.hidden2, batch_first=True)
        self.drop = nn.Dropout(s.dropout)
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, _ = self.lstm1(x)                          # (B, L, hidden1)
        b, _ = self.lstm2(self.drop(a))               # (B, L, hidden2)
        return self.head(self.drop(b[:, -1]))


class LstmForecaster(NeuralForecaster):
    """Stacked LSTM over one symbol's window; pooled over symbols (inputs (B, L, F))."""

    kind = "lstm"
    section = "lstm"
    settings_type = LstmSettings

    @classmethod
    def build_net(cls, s: LstmSettings, train: TrainSettings, n_features: int, n_symbols: int) -> LstmNet:
        head = make_head(train.distribution, s.hidden2, s.horizon, train.sigma_floor_pct, train.student_t_df)
        return LstmNet(n_features, s, head)

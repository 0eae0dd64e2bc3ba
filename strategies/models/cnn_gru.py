"""The main model: 1-D convolutions with max-pooling → stacked GRU → dropout → a (μ, σ) head.

Shapes, for a window of ``L = lookback`` feature rows with ``F`` features::

    x (B, L, F) ─ transpose → (B, F, L)
      ─ conv_layers × [left zero-pad → Conv1d(kernel) → GELU → MaxPool1d(pool, ceil)] → (B, C, ceil(L / pool^k))
      ─ transpose → GRU (gru_layers × gru_hidden, dropout between layers) → last step (B, H)
      ─ dropout → head → mu, sigma (B, h), percent log returns of the next h bars

The convolutions pick out local candle patterns; pooling shortens the sequence
the GRU has to carry.  Pooling rounds up, so the newest rows always reach the
GRU (a floor would drop the ones after the last full pool window).  The
convolutions are causal (padded on the left only): each output row sees its
own row and the ``kernel_size − 1`` before it, so the newest rows, which matter
most, are never mixed with padding zeros from the right.
"""

from __future__ import annotations

import torch
from torch import nn

from strategies.models.heads import GaussianHead, make_head
from strategies.models.neural import NeuralForecaster
from strategies.settings import CnnGruSettings, TrainSettings


class CnnGruNet(nn.Module):
    """(B, L, F) → (mu, sigma) each (B, h)."""

    def __init__(self, n_features: int, s: CnnGruSettings, head: GaussianHead) -> None:
        super().__init__()
        if s.lookback // s.pool ** s.conv_layers < 1:
            raise ValueError(f"model.cnn_gru: lookback={s.lookback} is too short for conv_layers={s.conv_layers} "
                             f"max-pools of pool={s.pool}; lookback must be at least pool**conv_layers = "
                             f"{s.pool ** s.conv_layers}")
        self.lookback, self.horizon = s.lookback, s.horizon
        blocks: list[nn.Module] = []
        channels = n_features
        for _ in range(s.conv_layers):
            blocks += [nn.ZeroPad1d((s.kernel_size - 1, 0)), nn.Conv1d(channels, s.conv_channels, s.kernel_size),
                       nn.GELU(), nn.MaxPool1d(s.pool, ceil_mode=True)]
            channels = s.conv_channels
        self.conv = nn.Sequential(*blocks)
        self.gru = nn.GRU(channels, s.gru_hidden, s.gru_layers, batch_first=True,
                          dropout=s.dropout if s.gru_layers > 1 else 0.0)
        self.drop = nn.Dropout(s.dropout)
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.conv(x.transpose(1, 2))              # (B, C, L')
        out, _ = self.gru(z.transpose(1, 2))          # (B, L', H)
        return self.head(self.drop(out[:, -1]))


class CnnGruForecaster(NeuralForecaster):
    """CNN + stacked GRU over one symbol's window; pooled over symbols (inputs (B, L, F))."""

    kind = "cnn_gru"
    section = "cnn_gru"
    settings_type = CnnGruSettings

    @classmethod
    def build_net(cls, s: CnnGruSettings, train: TrainSettings, n_features: int, n_symbols: int) -> CnnGruNet:
        head = make_head(train.distribution, s.gru_hidden, s.horizon, train.sigma_floor_pct, train.student_t_df)
        return CnnGruNet(n_features, s, head)

"""The causal Transformer behind the `transformer` model, with a key/value cache as its state.

Imported lazily from :func:`harness.models.transformer.build`, so that loading plugins
(``harness list``) does not import torch. The network follows the model contract
``outputs, state = net(inputs, state=None)``.

State: a flat tuple ``(k_0, v_0, k_1, v_1, ...)``, two tensors per layer, each
(batch, heads, cached_len, head_dim), batch first. The tuple is flat rather than one (k, v)
pair per layer because the trainer reads the batch size from the state's first tensor.

Positions and the window: the network is a sliding-window Transformer of width ``context``.
A token sees itself and the ``context - 1`` tokens before it; the cache keeps at most
``context - 1`` entries per layer (the oldest are dropped), exactly what the next token can
see. A token's position is ``min(p, context - 1)`` for its absolute position ``p``: positions
saturate at the last one the position table holds, so learned positions never index out of
range. The position offset of a call is the cached length: while nothing has been dropped it
is the absolute position of the call's first token, and once the cache is full every new
token has absolute position >= ``context - 1`` anyway, so the saturated positions come out the
same. Hence feeding a sequence in pieces with the cache carried equals feeding it whole, at
any length. Within ``context`` (the sequences the model serves) this is a plain causal
Transformer; beyond it (a task that carries the state across batches) it is a best effort.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def window_mask(cached: int, steps: int, context: int, device: torch.device) -> torch.Tensor:
    """Which keys each new query may attend to: (steps, cached + steps), True = attend.

    Key ``j`` indexes the cache followed by the new keys, query ``i`` the new tokens; query
    ``i`` sits right after key ``cached + i - 1``, so it sees keys ``cached + i - context + 1``
    through ``cached + i`` (all cached keys within the window, causal among the new ones).
    """
    query = torch.arange(steps, device=device).unsqueeze(1) + cached
    key = torch.arange(cached + steps, device=device).unsqueeze(0)
    return (key <= query) & (key > query - context)


def sinusoidal_table(length: int, width: int) -> torch.Tensor:
    """The fixed sine/cosine position table of "Attention Is All You Need": (length, width)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention over the cached keys/values plus the new ones."""

    def __init__(self, width: int, heads: int, context: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.context = context
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache_k, cache_v):
        batch, steps, width = x.shape
        q, k, v = (
            self.qkv(x)
            .view(batch, steps, 3, self.heads, width // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        if cache_k is not None:
            k = torch.cat([cache_k, k], dim=2)
            v = torch.cat([cache_v, v], dim=2)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        keep = min(k.shape[2], self.context - 1)
        start = k.shape[2] - keep  # not k[..., -keep:]: keep may be 0 (context 1)
        y = self.out(attended.transpose(1, 2).reshape(batch, steps, width))
        return y, k[:, :, start:], v[:, :, start:]


class Block(nn.Module):
    """Pre-norm block: x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x))."""

    def __init__(self, width: int, heads: int, context: int, ff_mult: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, context, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, ff_mult * width),
            nn.GELU(),
            nn.Linear(ff_mult * width, width),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache_k, cache_v):
        attended, k, v = self.attention(self.norm1(x), mask, cache_k, cache_v)
        x = x + self.drop(attended)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, k, v


class CausalTransformer(nn.Module):
    """Embedding (tokens) or linear projection (values), absolute positions, pre-norm blocks,
    final LayerNorm, linear head. See the module docstring for the state and positions."""

    def __init__(
        self,
        shape,
        width: int,
        num_layers: int,
        heads: int,
        context: int,
        ff_mult: int,
        dropout: float,
        positions: str,
    ) -> None:
        super().__init__()
        self.tokens = shape.input_kind == "tokens"
        self.context = context
        self.num_layers = num_layers
        if self.tokens:
            self.embed = nn.Embedding(shape.input_size, width)
        else:
            self.embed = nn.Linear(shape.input_size, width)
        if positions == "learned":
            self.positions = nn.Embedding(context, width)
        else:
            self.positions = None
            self.register_buffer("table", sinusoidal_table(context, width), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(width, heads, context, ff_mult, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, shape.output_size)

    def forward(self, inputs: torch.Tensor, state=None):
        if state is not None and len(state) != 2 * self.num_layers:
            raise ValueError(
                f"the transformer's state holds (k, v) for {self.num_layers} layer(s), i.e. "
                f"{2 * self.num_layers} tensors, not {len(state)}"
            )
        cached = 0 if state is None else state[0].shape[2]
        steps = inputs.shape[1]
        x = self.embed(inputs)
        index = (torch.arange(steps, device=x.device) + cached).clamp(max=self.context - 1)
        x = x + (self.table[index] if self.positions is None else self.positions(index))
        x = self.drop(x)
        mask = window_mask(cached, steps, self.context, x.device)
        new_state = []
        for layer, block in enumerate(self.blocks):
            k, v = (None, None) if state is None else state[2 * layer : 2 * layer + 2]
            x, k, v = block(x, mask, k, v)
            new_state += [k, v]
        return self.head(self.norm(x)), tuple(new_state)

"""The causal TCN network (imported lazily by :func:`harness_longrange.tcn.build`)."""

from __future__ import annotations

import torch
from torch import nn

from harness import TaskShape


class CausalTCN(nn.Module):
    """A small causal temporal convolution network, following the harness model contract.

    Residual levels with dilations 1, 2, 4, ...: level ``i`` computes ``h + relu(conv(h))``
    where ``conv`` is a kernel-2 causal convolution with dilation ``d = 2**i`` (``num_layers``
    of them in a row). A kernel-2 convolution reads two taps, ``h[t - d]`` and ``h[t]``, so it is
    one matrix product over the two concatenated (faster on a CPU than ``nn.Conv1d`` with
    dilation). With six levels an output sees the last 64 steps. A linear projection takes the
    inputs in (token ids are one-hot encoded), a linear head reads every step out.

    The state is what makes it a sequence model under the contract: for each level, the last
    inputs that level has seen (``num_layers * d`` steps, zeros before the first call), as a
    tuple of (context, batch, channels) tensors. Feeding two halves with the state carried is
    then exactly feeding the whole, so the shared training, generation and state-carrying code
    serve it like any recurrent model. (Batch sits in dimension 1, where the trainer looks.)
    """

    def __init__(self, shape: TaskShape, channels: int, num_layers: int, levels: int = 6):
        super().__init__()
        self.tokens = shape.input_kind == "tokens"
        self.input_size = shape.input_size
        self.channels = channels
        self.dilations = [2**i for i in range(levels)]
        self.project = nn.Linear(shape.input_size, channels)
        self.levels = nn.ModuleList(
            nn.ModuleList(nn.Linear(2 * channels, channels) for _ in range(num_layers))
            for _ in self.dilations
        )
        self.head = nn.Linear(channels, shape.output_size)

    @property
    def receptive_field(self) -> int:
        """How many steps (this one included) an output can see."""
        return 1 + len(self.levels[0]) * sum(self.dilations)

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None):
        x = nn.functional.one_hot(inputs, self.input_size).float() if self.tokens else inputs
        h = self.project(x)  # (batch, time, channels)
        if state is None:
            state = tuple(
                h.new_zeros(len(convs) * d, h.shape[0], self.channels)
                for d, convs in zip(self.dilations, self.levels)
            )
        new_state = []
        for d, convs, past in zip(self.dilations, self.levels, state):
            seen = torch.cat([past.transpose(0, 1), h], dim=1)  # the level's history, then now
            new_state.append(seen[:, seen.shape[1] - past.shape[0] :].transpose(0, 1))
            out = seen
            for conv in convs:  # each convolution needs d earlier steps, so it shortens by d
                out = torch.relu(conv(torch.cat([out[:, :-d], out[:, d:]], dim=-1)))
            h = h + out
        return self.head(h), tuple(new_state)

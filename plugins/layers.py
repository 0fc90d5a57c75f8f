"""Network building blocks shared by the built-in model plugins.

Imported lazily from each plugin's ``build`` so that loading plugins (``harness list``) does not
import torch. Every network follows the model contract in :mod:`harness.plugin_api.model`.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.plugin_api.task import TaskShape


class InputEncoder(nn.Module):
    """One-hot for token inputs, identity for value inputs: the vector models' front door."""

    def __init__(self, shape: TaskShape) -> None:
        super().__init__()
        self.tokens = shape.input_kind == "tokens"
        self.size = shape.input_size

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.tokens:  # one_hot itself checks the range by reading the data: vmap cannot trace it
            return (inputs.unsqueeze(-1) == torch.arange(self.size, device=inputs.device)).float()
        return inputs


class TorchRecurrent(nn.Module):
    """``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` over (one-hot or value) inputs, then a linear head."""

    def __init__(
        self, layer: type[nn.Module], shape: TaskShape, hidden_size: int, num_layers: int
    ) -> None:
        super().__init__()
        self.encode = InputEncoder(shape)
        self.rnn = layer(shape.input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, shape.output_size)

    def forward(self, inputs: torch.Tensor, state=None):
        hidden, state = self.rnn(self.encode(inputs), state)
        return self.head(hidden), state


class EmbeddingRNN(nn.Module):
    """``nn.Embedding`` then ``nn.RNN`` then a linear head; serves token inputs only."""

    def __init__(self, shape: TaskShape, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(shape.input_size, hidden_size)
        self.rnn = nn.RNN(hidden_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, shape.output_size)

    def forward(self, inputs: torch.Tensor, state=None):
        hidden, state = self.rnn(self.embed(inputs), state)
        return self.head(hidden), state


class RNNCellLoop(nn.Module):
    """A stack of ``nn.RNNCell`` stepped over time in a Python loop, then a linear head."""

    def __init__(self, shape: TaskShape, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.encode = InputEncoder(shape)
        sizes = [shape.input_size] + [hidden_size] * num_layers
        self.cells = nn.ModuleList(nn.RNNCell(a, hidden_size) for a in sizes[:-1])
        self.hidden_size = hidden_size
        self.head = nn.Linear(hidden_size, shape.output_size)

    def forward(self, inputs: torch.Tensor, state=None):
        x = self.encode(inputs)
        if state is None:
            state = x.new_zeros(len(self.cells), x.shape[0], self.hidden_size)
        layers = list(state.unbind(0))
        outputs = []
        for t in range(x.shape[1]):
            h = x[:, t]
            for i, cell in enumerate(self.cells):
                h = layers[i] = cell(h, layers[i])
            outputs.append(h)
        return self.head(torch.stack(outputs, dim=1)), torch.stack(layers)


class ScratchRNN(nn.Module):
    """An Elman RNN from its own parameters: h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h).

    No torch RNN modules. The input projection of all time steps is one matrix product hoisted
    out of the time loop (the classic first speed-up); only the recurrent product stays inside.
    With ``num_layers > 1`` the layers stack like ``nn.RNN``'s. Its state is (layers, batch,
    hidden), the same as ``nn.RNN``, so weights copy over one to one.
    """

    def __init__(self, shape: TaskShape, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.encode = InputEncoder(shape)
        self.hidden_size = hidden_size
        sizes = [shape.input_size] + [hidden_size] * num_layers
        scale = hidden_size**-0.5
        self.W_xh = nn.ParameterList(
            nn.Parameter(torch.empty(a, hidden_size).uniform_(-scale, scale)) for a in sizes[:-1]
        )
        self.W_hh = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-scale, scale))
            for _ in range(num_layers)
        )
        self.b_h = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size).uniform_(-scale, scale))
            for _ in range(num_layers)
        )
        self.W_hy = nn.Parameter(
            torch.empty(hidden_size, shape.output_size).uniform_(-scale, scale)
        )
        self.b_y = nn.Parameter(torch.zeros(shape.output_size))

    def forward(self, inputs: torch.Tensor, state=None):
        x = self.encode(inputs)
        batch, steps = x.shape[0], x.shape[1]
        if state is None:
            state = x.new_zeros(len(self.W_hh), batch, self.hidden_size)
        finals = []
        for layer, (w_xh, w_hh, b_h) in enumerate(zip(self.W_xh, self.W_hh, self.b_h)):
            projected = torch.addmm(b_h, x.reshape(batch * steps, -1), w_xh).view(batch, steps, -1)
            h = state[layer]
            outputs = []
            # unbind, not projected[:, t]: indexing makes backward fill a sequence-sized zero
            # tensor per step (quadratic in length: 771 ms vs 57 ms a step at 1000 steps)
            for step_input in projected.unbind(1):
                h = torch.tanh(torch.addmm(step_input, h, w_hh))
                outputs.append(h)
            x = torch.stack(outputs, dim=1)
            finals.append(h)
        return x @ self.W_hy + self.b_y, torch.stack(finals)

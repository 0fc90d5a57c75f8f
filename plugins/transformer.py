"""The `transformer` model: a causal (decoder-only) Transformer with a key/value cache.

Token embedding (token inputs) or a linear projection (value inputs), learned or sinusoidal
absolute positions, ``num_layers`` pre-norm blocks (LayerNorm, causal multi-head
self-attention, residual; LayerNorm, GELU MLP of ``ff_mult * hidden_size``, residual), a final
LayerNorm and a linear head; d_model is ``hidden_size``.

The state is the key/value cache: a flat tuple ``(k_0, v_0, k_1, v_1, ...)`` of
(batch, heads, cached_len, head_dim) tensors; the position offset of a call is the cached
length. A task whose sequences are longer than ``context`` is declined (:func:`cannot_serve`).
When a carried cache would outgrow the context (a task that carries the state across
batches), the model slides: each token sees itself and the ``context - 1`` tokens before it,
the cache keeps only those, and positions saturate at ``context - 1`` (a learned position
table is never indexed out of range). Pieces with the cache carried still equal the whole
sequence in one call; see :mod:`harness.models.attention` for why.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import Choice, Model, hookimpl

HARNESS_API = "1.2"

POSITIONS = ("learned", "sinusoidal")


@dataclass(frozen=True)
class TransformerOptions:
    """The transformer's own options (``-o transformer.NAME=VALUE``)."""

    heads: int = 4  #: attention heads; must divide hidden_size
    context: int = 512  #: longest sequence served, and the attention window beyond it
    ff_mult: int = 4  #: the MLP's hidden width is ff_mult * hidden_size
    dropout: float = 0.0  #: on embeddings, attention weights and residual branches; training only
    positions: str = "learned"  #: "learned" or "sinusoidal" absolute positions

    def __post_init__(self) -> None:
        for name in ("heads", "context", "ff_mult"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"transformer option {name} must be an integer >= 1, not {value!r}"
                )
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ValueError(f"transformer option dropout must be a number, not {dropout!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"transformer option dropout must be in [0, 1), not {dropout!r}")
        if self.positions not in POSITIONS:
            raise ValueError(
                f"transformer option positions must be 'learned' or 'sinusoidal', "
                f"not {self.positions!r}"
            )


def build(
    shape,
    hidden_size: int,
    num_layers: int,
    options: TransformerOptions = TransformerOptions(),  # noqa: B008 (frozen, so shared is fine)
):
    """A :class:`~harness.models.attention.CausalTransformer` for ``shape``."""
    if hidden_size % options.heads:
        raise ValueError(
            f"transformer: hidden_size {hidden_size} is not divisible by heads {options.heads}"
        )
    if num_layers < 1:
        raise ValueError(f"transformer: num_layers must be >= 1, not {num_layers}")
    from harness.models.attention import CausalTransformer

    return CausalTransformer(
        shape,
        hidden_size,
        num_layers,
        heads=options.heads,
        context=options.context,
        ff_mult=options.ff_mult,
        dropout=float(options.dropout),
        positions=options.positions,
    )


def cannot_serve(shape, options: TransformerOptions) -> str | None:
    """Why the transformer with ``options`` cannot serve a task of ``shape``, else None."""
    length = getattr(shape, "length", None)
    if length is not None and length > options.context:
        return (
            f"transformer serves sequences up to context={options.context} "
            f"({options.positions} positions); the task's are {length}: "
            "raise -o transformer.context"
        )
    return None


@hookimpl
def register_models(register):
    register(
        Model(
            name="transformer",
            description=(
                "causal pre-norm Transformer (torch.nn pieces, scaled_dot_product_attention) "
                "with a key/value cache as its state"
            ),
            build=build,
            options=TransformerOptions(),
            limits=cannot_serve,
            # what `harness tune` may search beside the recipe (heads divide every hidden
            # size the default recipe space gives: half, the same and twice a multiple of 8)
            search={"heads": Choice(2, 4), "dropout": Choice(0.0, 0.1)},
        )
    )

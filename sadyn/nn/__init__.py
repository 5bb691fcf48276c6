"""sadyn.nn: building blocks of the looped models, all in the (B, S, D) token layout and all
usable under ``torch.func`` (jvp, vjp, vmap).

attention: multi-head self-attention (fused qkv) as explicit softmax math.
constrained: symmetric and generalized-symmetric attention (Props 4.1, 4.2) by construction.
positional: GTA blocks, row/column/box embeddings, Sudoku relation bias, 2-D sinusoids.
norms: unit / standard RMSNorm, LayerNorm, sphere normalization, per group of N channels.
sphere: tangent projection per group. omega: AKOrN's natural frequencies.
pairs: elementwise ops on channel pairs (GTA blocks, Omega).
readout: AKOrN's norm readout + head, and a plain MLP readout.
"""

from sadyn.nn.attention import (
    MultiHeadSelfAttention,
    fused_attention,
    fused_attention_enabled,
    softmax_attention,
)
from sadyn.nn.constrained import (
    GenSymMultiAttention,
    GenSymSingleAttention,
    SymmetricAttention,
)
from sadyn.nn.norms import (
    NORM_KINDS,
    Normalization,
    group_norms,
    layer_normalize,
    rms_normalize,
    sphere_normalize,
)
from sadyn.nn.omega import Omega
from sadyn.nn.pairs import pair_apply, swap_pairs
from sadyn.nn.positional import (
    GTA,
    CellEmbedding,
    RelationBias,
    canonical_pos,
    gta_angles,
    parse_pos,
    sinusoidal_2d,
    sudoku_grid,
)
from sadyn.nn.readout import AKOrNReadout, MLPReadout, NormReadout
from sadyn.nn.sphere import tangent_project

__all__ = [
    "GTA",
    "NORM_KINDS",
    "AKOrNReadout",
    "CellEmbedding",
    "GenSymMultiAttention",
    "GenSymSingleAttention",
    "MLPReadout",
    "MultiHeadSelfAttention",
    "NormReadout",
    "Normalization",
    "Omega",
    "RelationBias",
    "SymmetricAttention",
    "canonical_pos",
    "fused_attention",
    "fused_attention_enabled",
    "group_norms",
    "gta_angles",
    "layer_normalize",
    "pair_apply",
    "parse_pos",
    "rms_normalize",
    "sinusoidal_2d",
    "softmax_attention",
    "sphere_normalize",
    "sudoku_grid",
    "swap_pairs",
    "tangent_project",
]

"""Small protocol-conforming looped models for the probe tests (no sadyn.models needed).

* :class:`ToyItrSA`: ItrSA with S = 81 tokens of width D (default 2, so n = 162 and dense
  references are cheap): ``X+ = c γ ⊙ Π_g(X + η (C + MSA(X)))`` with multi-head softmax
  attention through ``F.scaled_dot_product_attention`` (so the probes must force the math
  backend to take JVPs). Options: no normalisation, oscillator-wise groups, the standard
  (sqrt(g)-scaled) RMSNorm, and position-dependent values (a stand-in for GTA that breaks the
  Kronecker PV form).
* :class:`LinearToy`: ``X+ = reshape(A vec(X)) + C`` and ``MSA(X) = reshape(M vec(X))`` for
  given matrices: every Jacobian, exponent and eigenspace is known in closed form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

S = 81


def puzzles(b: int, seed: int = 0, given: float = 0.35) -> Tensor:
    """``(b, 81)`` random digits, a share ``given`` of them given (validity is irrelevant).

    Given cells with the same digit start in the same state, which makes Jacobian spectra
    degenerate; ``given=0`` avoids that where a test needs a generic spectrum.
    """
    g = torch.Generator().manual_seed(seed)
    digits = torch.randint(1, 10, (b, S), generator=g)
    mask = torch.rand(b, S, generator=g) < given
    return torch.where(mask, digits, torch.zeros_like(digits))


class ToyAttention(nn.Module):
    def __init__(self, d: int, heads: int, position_values: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        scale = torch.linspace(0.5, 1.5, S) if position_values else torch.ones(S)
        self.register_buffer("pos", scale)
        self.position_values = position_values

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, s, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        shape = (b, s, self.heads, d // self.heads)
        return tuple(t.reshape(shape).transpose(1, 2) for t in (q, k, v))  # type: ignore

    def probs(self, x: Tensor) -> Tensor:
        q, k, _ = self._split(x)
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._split(x)
        if self.position_values:  # value of token j scaled by pos_j, output of i by 1/pos_i
            v = v * self.pos[:, None]
        o = F.scaled_dot_product_attention(q, k, v)
        if self.position_values:
            o = o / self.pos[:, None]
        return self.out(o.transpose(1, 2).reshape(x.shape))


class ToyItrSA(nn.Module):
    def __init__(
        self,
        d: int = 2,
        heads: int = 2,
        *,
        eta: float = 0.7,
        normalize: bool = True,
        group: int | None = None,
        standard_rms: bool = False,
        position_values: bool = False,
        weight_scale: float = 1.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.d, self.group = d, group or d
        self.normalize, self.standard_rms = normalize, standard_rms
        self.embed = nn.Embedding(10, d)
        self.attn = ToyAttention(d, heads, position_values)
        with torch.no_grad():
            for p in self.attn.parameters():
                p.mul_(weight_scale)
        self.gamma = nn.Parameter(0.4 + 0.5 * torch.rand(d))
        self._eta = nn.Parameter(torch.tensor(eta))
        self.head = nn.Linear(d, 9)
        self.to(dtype)

    # --- protocol
    @property
    def eta(self) -> Tensor:
        return self._eta

    @property
    def norm_gain(self) -> Tensor | None:
        return self.gamma if self.normalize else None

    def attention_modules(self) -> list[nn.Module]:
        return [self.attn]

    def encode(self, puzzles: Tensor) -> Tensor:
        return self.embed(puzzles)

    def _norm(self, y: Tensor) -> Tensor:
        g = self.group
        yg = y.reshape(*y.shape[:-1], self.d // g, g)
        unit = (yg / yg.norm(dim=-1, keepdim=True)).reshape(y.shape)
        scale = math.sqrt(g) if self.standard_rms else 1.0
        return scale * self.gamma * unit

    def init_state(self, cond: Tensor, given: Tensor, *, generator=None, deterministic=False):
        noise = torch.randn(cond.shape, generator=generator, dtype=cond.dtype)
        x = torch.where(given[..., None], cond, torch.zeros_like(cond) if deterministic else noise)
        return self._norm(x) if self.normalize else x

    def msa(self, x: Tensor) -> Tensor:
        return self.attn(x)

    def update(self, x: Tensor, cond: Tensor) -> Tensor:
        return cond + self.msa(x)

    def step(self, x: Tensor, cond: Tensor) -> Tensor:
        y = x + self.eta * self.update(x, cond)
        return self._norm(y) if self.normalize else y

    def attention_probs(self, x: Tensor) -> Tensor:
        return self.attn.probs(x)

    def pseudo_energy(self, x: Tensor, cond: Tensor) -> Tensor:
        return -(x * (cond + self.msa(x))).sum((1, 2))

    def readout(self, x: Tensor) -> Tensor:
        return self.head(x)


class LinearToy(nn.Module):
    """``step(X) = vec^-1(A vec X) + C``, ``msa(X) = vec^-1(M vec X)``; ``n = 81 * d``."""

    def __init__(self, a: Tensor, m: Tensor | None = None, d: int = 2) -> None:
        super().__init__()
        self.d = d
        self.register_buffer("a", a.double())
        self.register_buffer("m", (a if m is None else m).double())
        self.embed = nn.Embedding(10, d).double()
        self._eta = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    @property
    def eta(self) -> Tensor:
        return self._eta

    norm_gain = None

    def attention_modules(self) -> list[nn.Module]:
        return []

    def _lin(self, mat: Tensor, x: Tensor) -> Tensor:
        return (x.reshape(x.shape[0], -1) @ mat.T).reshape(x.shape)

    def encode(self, puzzles: Tensor) -> Tensor:
        return 0.0 * self.embed(puzzles)

    def init_state(self, cond: Tensor, given: Tensor, *, generator=None, deterministic=False):
        return torch.randn(cond.shape, generator=generator, dtype=cond.dtype)

    def msa(self, x: Tensor) -> Tensor:
        return self._lin(self.m, x)

    def update(self, x: Tensor, cond: Tensor) -> Tensor:
        return self._lin(self.a, x) - x + cond

    def step(self, x: Tensor, cond: Tensor) -> Tensor:
        return self._lin(self.a, x) + cond

    def attention_probs(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def pseudo_energy(self, x: Tensor, cond: Tensor) -> Tensor:
        return -(x * (cond + self.msa(x))).sum((1, 2))

    def readout(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], x.shape[1], 9)

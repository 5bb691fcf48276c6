"""Test-time compute study: a single-trajectory alternative to voting (measured, not adopted): one
trajectory per board from the deterministic start, kicked with noise on its blank cells (sigma
times the state's RMS per cell) when its decoded board has not changed for m steps and is not
valid; a board counts once a valid solution appears. Same loop budget as a single run.

usage: .venv/bin/python scripts/kick_stalled_trajectory.py SIGMA M N [MODEL]
(sigma 0: the plain run)

Measured (200 OOD boards, small-vote, T=256, this CPU): sigma 0 -> 26.5% (= the deterministic
single run); 0.5/m=8 -> 26.0%; 1.5/m=16 -> 25.0%; 3/m=24 -> 26.0%: no gain.
"""

import sys
import time

import torch

from sadyn.pretrained import resolve_model
from sadyn.probes.voting import board_conflicts
from sadyn.sudoku import resolve_dataset

torch.set_num_threads(1)
sigma, m, n = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model, _, _ = resolve_model(sys.argv[4] if len(sys.argv) > 4 else "small-vote")
ps = resolve_dataset("ood", n=n, seed=0)
q, s = (t.long() for t in ps.to_torch())
gen = torch.Generator().manual_seed(0)
grid = [16, 32, 64, 128, 256]
t0 = time.time()
with torch.no_grad():
    cond = model.encode(q)
    given = q > 0
    x = model.init_state(cond, given, deterministic=True)
    done = torch.zeros(len(q), dtype=torch.bool)
    ans = torch.zeros_like(q)
    same = torch.zeros(len(q), dtype=torch.long)
    prev = None
    kicks = torch.zeros(len(q), dtype=torch.long)
    for t in range(1, 257):
        x = model.step(x, cond)
        pred = model.readout(x).argmax(-1) + 1
        valid = board_conflicts(pred, q) == 0
        newly = valid & ~done
        ans[newly] = pred[newly]
        done |= valid
        if prev is not None:
            same = torch.where((pred == prev).all(-1), same + 1, 0)
        prev = pred
        stall = (same >= m) & ~done
        if sigma > 0 and stall.any():
            noise = torch.randn(x.shape, generator=gen)
            scale = x.norm(dim=-1, keepdim=True) / x.shape[-1] ** 0.5
            kick = stall[:, None, None] & (~given)[:, :, None]
            x = torch.where(kick, x + sigma * scale * noise, x)
            same[stall] = 0
            kicks += stall.long()
        if t in grid:
            cur = torch.where(done[:, None], ans, pred)
            acc = ((cur == s).all(-1)).float().mean().item()
            print(
                f"T={t}: {100 * acc:.1f}%  kicks/board {kicks.float().mean():.1f}  "
                f"{time.time() - t0:.0f}s",
                flush=True,
            )

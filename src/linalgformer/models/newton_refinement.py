"""A learned first guess refined by Newton-Schulz: ``model.newton_steps`` (continuous inversion).

The model reads out a first guess X0 of A^-1 (in units of max|A|**-1: Z0 = max|A| X0, so that with
A' = A / max|A|, Z0 guesses A'^-1) and k steps of the iteration X <- X (2I - A X), the newton
family's (``baselines/newton.py``, ``models/newton_construction.py``), refine it:
Z <- Z (2I - A' Z). The steps are scale-free, differentiable, and part of the model's answer in
training (the loss is the verifiers' error after the k steps) and in use. Each step squares the
residual I - A'Z, so the guess needs only ||I - A' Z0|| < 1 for the steps to converge; from
Newton-Schulz's classical start Z0 = A'^T / (||A'||_1 ||A'||_inf) the same steps converge from
further away, more slowly (``classical_start``, for comparison).

Batches of mixed sizes: each n x n matrix sits in an N x N block padded with the identity (the
padding block of A' and of Z stays I under the steps), so one batched matmul serves every size.
"""

from __future__ import annotations

import torch

QUESTION_OFFSET = 2  # a continuous source is "Vn Vn" then the n*n entries, row-major


def _block_index(sides: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) sides n -> (B, N, N) row-major index i * n + j of each entry of an n x n block in an
    N x N frame, and (B, N, N) which of them lie inside the block."""
    i = torch.arange(size, device=sides.device)[None, :, None]
    j = torch.arange(size, device=sides.device)[None, None, :]
    n = sides[:, None, None]
    return i * n + j, (i < n) & (j < n)


def framed(flat: torch.Tensor, sides: torch.Tensor, size: int, offset: int = 0) -> torch.Tensor:
    """(B, L) row-major n x n entries starting at ``offset`` -> (B, N, N) matrices, each padded
    with the identity beyond its n x n block."""
    index, inside = _block_index(sides, size)
    index = (index + offset).clamp(max=flat.shape[1] - 1)
    picked = flat.gather(1, index.reshape(len(flat), -1)).reshape(index.shape)
    eye = torch.eye(size, dtype=flat.dtype, device=flat.device).expand_as(picked)
    return torch.where(inside, picked, eye)


def unframed(matrices: torch.Tensor, sides: torch.Tensor, width: int) -> torch.Tensor:
    """(B, N, N) -> (B, width) each n x n block row-major, 0 past its n*n entries."""
    p = torch.arange(width, device=matrices.device)[None, :]
    n = sides[:, None]
    size = matrices.shape[-1]
    index = ((p // n) * size + p % n).clamp(max=size * size - 1)
    flat = matrices.reshape(len(matrices), -1).gather(1, index)
    return flat.masked_fill(p >= n * n, 0.0)


def question_units(values: torch.Tensor, sides: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """A continuous source's numbers (B, S) -> A' = A / max|A| (B, N, N), identity-padded."""
    values = values.to(dtype)
    scale = values.abs().amax(dim=1).clamp_min(torch.finfo(dtype).tiny)
    return framed(values / scale[:, None], sides, size, QUESTION_OFFSET)


def newton_schulz(z: torch.Tensor, a: torch.Tensor, steps: int) -> torch.Tensor:
    """k steps of Z <- Z (2I - A Z) on (B, N, N) batches."""
    two = 2 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    for _ in range(steps):
        z = z @ (two - a @ z)
    return z


def classical_start(a: torch.Tensor) -> torch.Tensor:
    """Newton-Schulz's start A^T / (||A||_1 ||A||_inf): ||I - A X0|| < 1 for any invertible A."""
    norm_1 = a.abs().sum(dim=-2).amax(dim=-1)
    norm_inf = a.abs().sum(dim=-1).amax(dim=-1)
    return a.transpose(-1, -2) / (norm_1 * norm_inf)[:, None, None]


def refine_inverse(z: torch.Tensor, values: torch.Tensor, shapes: torch.Tensor, steps: int) -> torch.Tensor:
    """The read-out z (B, P: a guess of each A'^-1, row-major, in units of max|A|**-1) after
    ``steps`` Newton-Schulz steps against the questions' numbers ``values`` (B, S); ``shapes``
    (B, 2): the answers' n x n."""
    if steps <= 0:
        return z
    sides = shapes[:, 0].long().to(z.device)
    size = int(sides.max())
    a = question_units(values.to(z.device), sides, size, z.dtype)
    return unframed(newton_schulz(framed(z, sides, size), a, steps), sides, z.shape[1])

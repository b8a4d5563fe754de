"""The hand-set ReLU-attention transformer runs the deflated power method iterate for iterate."""

import numpy as np
import pytest
import torch

from linalgformer.baselines.spectral import power_iterate, power_method, start_vectors
from linalgformer.models.spectral_construction import PowerIterationTransformer, schedule
from linalgformer.problems.spectral import abs_cosines, sample_pca, second_moment


pytestmark = pytest.mark.usefixtures("one_thread")


def unit_columns(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-2, keepdims=True)


@pytest.mark.parametrize("dim,k,iterations", [(10, 3, 3), (6, 2, 6), (5, 1, 12)])
def test_every_iterate_equals_the_power_method(dim, k, iterations):
    ex = sample_pca(np.random.default_rng(dim), 32, dim, 10, k)
    start = start_vectors(1, 32, dim, k)
    model = PowerIterationTransformer(dim, k, iterations).double()
    batch = {"x": torch.from_numpy(ex.x), "start": torch.from_numpy(start)}
    c = second_moment(ex.x)
    _, final = power_method(c, k, iterations, start)
    with torch.no_grad():
        trajectory = [s.numpy() for s in model.trajectory(batch)]
    checked = 0
    for step, state in zip(model.steps, trajectory):
        if step.completes_iteration:
            found = [final[..., i] for i in range(step.slot)]
            want = power_iterate(c, start[..., step.slot], found, step.iteration)
            np.testing.assert_allclose(unit_columns(state)[..., step.slot], want, atol=1e-11)
            checked += 1
    assert checked == k * iterations
    with torch.no_grad():
        out = model(batch)
    np.testing.assert_allclose(out["vectors"].numpy(), final, atol=1e-11)
    np.testing.assert_allclose(out["values"].numpy(), np.einsum("bik,bij,bjk->bk", final, c, final), rtol=1e-10)


def test_it_is_built_from_relu_attention_with_averaged_heads_and_no_layernorm():
    model = PowerIterationTransformer(4, 3, 2)
    assert len(model.layers) == len(schedule(3, 2)) == 2 * 3 * 4 // 2
    layer = model.layers[0]
    assert layer.attn.kind == "relu" and layer.attn.combine == "average" and layer.mlp is None
    assert isinstance(layer.norm1, torch.nn.Identity)


def test_deep_enough_construction_finds_the_eigenvectors():
    ex = sample_pca(np.random.default_rng(0), 16, 6, 10, 1, "geometric", decay=0.3)
    model = PowerIterationTransformer(6, 1, 40).double()
    batch = {"x": torch.from_numpy(ex.x), "start": torch.from_numpy(start_vectors(0, 16, 6, 1))}
    with torch.no_grad():
        vectors = model(batch)["vectors"].numpy()
    assert abs_cosines(vectors, ex.vectors).min() > 1 - 1e-6

"""Spectral problems, metrics, baselines and real-data loaders (numpy; fast)."""

import gzip
import struct

import numpy as np
import pytest
import torch

from linalgformer.baselines.spectral import (Eigh, KMeansClustering, PowerMethod, SpectralClustering, power_method,
                                             start_vectors)
from linalgformer.datasets import distinct_blocks, load_digits_projected, load_idx_projected, read_idx
from linalgformer.errors import UserError
from linalgformer.problems.spectral import (ProblemConfig, abs_cosines, canonical_sign, eigenvalue_relative_error,
                                            matched_accuracy, sample_gmm, sample_pca, second_moment,
                                            subspace_distance)


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("spectrum", ["authors", "geometric"])
def test_pca_targets_are_the_top_eigenpairs_of_the_second_moment(spectrum):
    ex = sample_pca(rng(), 7, 6, 9, 3, spectrum, decay=0.5)
    assert ex.x.shape == (7, 9, 6) and ex.vectors.shape == (7, 6, 3) and ex.values.shape == (7, 3)
    for x, vectors, values in zip(ex.x, ex.vectors, ex.values):
        w, v = np.linalg.eigh(x.T @ x / 9)
        np.testing.assert_allclose(values, w[::-1][:3], rtol=1e-12)
        np.testing.assert_allclose(np.abs(vectors.T @ v[:, ::-1][:, :3]), np.eye(3), atol=1e-8)
        assert np.all(vectors[np.abs(vectors).argmax(0), range(3)] > 0)  # canonical sign


def test_pca_is_reproducible_and_depends_on_the_seed():
    a, b, c = (sample_pca(rng(s), 3, 4, 5, 2) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.allclose(a.x, c.x)


def test_geometric_spectrum_sets_the_population_eigenvalues():
    ex = sample_pca(rng(), 1, 4, 200_000, 4, "geometric", decay=0.5)
    np.testing.assert_allclose(ex.values[0], [1, 0.5, 0.25, 0.125], rtol=0.03)


def test_gmm_means_are_separated_and_labels_cover_classes():
    ex = sample_gmm(rng(), 50, 6, 40, classes=3, separation=4.0)
    assert ex.x.shape == (50, 40, 6) and ex.labels.shape == (50, 40) and set(np.unique(ex.labels)) == {0, 1, 2}
    big = sample_gmm(rng(1), 1, 6, 30_000, classes=2, separation=4.0)
    means = [big.x[0][big.labels[0] == c].mean(0) for c in (0, 1)]
    assert abs(np.linalg.norm(means[0] - means[1]) - 4.0) < 0.1


def test_cosine_metric_ignores_signs_and_subspace_distance_ignores_rotations():
    target = sample_pca(rng(), 4, 5, 8, 3).vectors
    flipped = target * np.array([-1.0, 1.0, -1.0])
    np.testing.assert_allclose(abs_cosines(2.5 * flipped, target), 1.0)
    mixed = target @ np.array([[0.6, -0.8, 0], [0.8, 0.6, 0], [0, 0, 1.0]])  # rotate inside the span
    np.testing.assert_allclose(subspace_distance(mixed, target), 0.0, atol=1e-7)
    assert abs_cosines(mixed, target)[:, 0].max() < 0.61
    other = np.linalg.qr(rng(5).standard_normal((4, 5, 5)))[0]
    assert np.all(subspace_distance(other[..., :3], target) > 0.1)


def test_canonical_sign_makes_largest_entry_positive():
    v = np.array([[[0.1, -0.9], [-0.7, 0.2]]])
    np.testing.assert_array_equal(canonical_sign(v), [[[-0.1, 0.9], [0.7, -0.2]]])


def test_eigenvalue_relative_error():
    np.testing.assert_allclose(eigenvalue_relative_error(np.array([[1.1, 1.8]]), np.array([[1.0, 2.0]])), [[0.1, 0.1]])


def test_matched_accuracy_uses_the_best_renaming():
    labels = np.array([[0, 0, 1, 1, 2, 2]])
    renamed = np.array([[2, 2, 0, 0, 1, 1]])
    assert matched_accuracy(renamed, labels, 3)[0] == 1.0
    one_wrong = np.array([[1, 1, 0, 0, 0, 2]])  # best renaming 1->0, 0->1, 2->2: 5 of 6 right
    assert matched_accuracy(one_wrong, labels, 3)[0] == pytest.approx(5 / 6)
    assert matched_accuracy(np.zeros((1, 6), int), labels, 3)[0] == pytest.approx(1 / 3)


def test_problem_config_refuses_nonsense():
    with pytest.raises(ValueError):
        ProblemConfig(k=11, dim=10)
    with pytest.raises(ValueError):
        ProblemConfig(data="idx")
    with pytest.raises(ValueError):
        ProblemConfig(loss="mse")


# ----------------------------------------------------------------------------- baselines


def batch_of(ex):
    return {"x": torch.from_numpy(ex.x)}


def test_eigh_and_power_to_convergence_equal_the_targets():
    ex = sample_pca(rng(), 16, 6, 12, 3, "geometric", decay=0.5)
    for baseline in (Eigh(3), PowerMethod(3, None), PowerMethod(3, None, mode="simultaneous")):
        out = baseline(batch_of(ex))
        np.testing.assert_allclose(abs_cosines(out["vectors"].numpy(), ex.vectors), 1.0, atol=1e-8)
        np.testing.assert_allclose(out["values"].numpy(), ex.values, rtol=1e-8)


def test_power_method_improves_with_iterations_and_modes_agree_on_the_first_vector():
    ex = sample_pca(rng(1), 200, 8, 8, 3)
    c = second_moment(ex.x)
    start = start_vectors(0, 200, 8, 3)
    scores = [abs_cosines(power_method(c, 3, t, start)[1], ex.vectors).mean(0) for t in (1, 4, 16)]
    assert np.all(np.diff(np.array(scores), axis=0) > 0)
    seq, sim = (power_method(c, 3, 5, start, mode)[1] for mode in ("sequential", "simultaneous"))
    np.testing.assert_allclose(seq[..., 0], sim[..., 0], atol=1e-12)
    np.testing.assert_allclose(np.swapaxes(seq, 1, 2) @ seq, np.broadcast_to(np.eye(3), (200, 3, 3)), atol=1e-10)


def test_clustering_baselines_solve_well_separated_mixtures():
    ex = sample_gmm(rng(2), 20, 5, 30, classes=2, separation=8.0)
    for baseline in (SpectralClustering(2), KMeansClustering(2)):
        labels = baseline(batch_of(ex))["labels"].numpy()
        assert matched_accuracy(labels, ex.labels, 2).mean() > 0.99
    three = sample_gmm(rng(3), 5, 5, 30, classes=3, separation=10.0)
    labels = SpectralClustering(3)(batch_of(three))["labels"].numpy()
    assert matched_accuracy(labels, three.labels, 3).mean() > 0.99


# ----------------------------------------------------------------------------- real data


def test_digits_are_projected_and_standardised():
    data = load_digits_projected(10)
    assert data.train.shape[1] == 10 and len(data.train) + len(data.test) == 1797
    np.testing.assert_allclose(data.train.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(data.train.std(0), 1, atol=1e-10)
    assert data.train.var(0)[0] == pytest.approx(1.0)  # top components standardised too


def test_distinct_blocks_have_no_repeats():
    for population, size in ((1000, 10), (12, 10)):
        idx = distinct_blocks(rng(), population, 300, size)
        assert idx.shape == (300, size) and idx.max() < population
        assert all(len(set(row)) == size for row in idx)


def write_idx(path, array, code, compress=False):
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_and_projection(tmp_path, compress):
    images = rng().integers(0, 256, size=(30, 4, 4)).astype(np.uint8)
    labels = (np.arange(30) % 3).astype(np.uint8)
    write_idx(tmp_path / "images", images, 0x08, compress)
    write_idx(tmp_path / "labels", labels, 0x08, compress)
    np.testing.assert_array_equal(read_idx(tmp_path / "images"), images)
    floats = rng().standard_normal((3, 2)).astype(np.float32)
    write_idx(tmp_path / "floats", floats, 0x0D)
    np.testing.assert_array_equal(read_idx(tmp_path / "floats"), floats)
    data = load_idx_projected(tmp_path / "images", tmp_path / "labels", 5, test_fraction=0.2)
    assert data.train.shape == (24, 5) and data.test.shape == (6, 5) and set(data.train_labels) <= {0, 1, 2}


def test_idx_rejects_absurd_headers_before_allocating(tmp_path):
    absurd = tmp_path / "absurd"
    absurd.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 4_000_000_000, 60_000, 60_000))
    with pytest.raises(UserError, match="larger than"):
        read_idx(absurd)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 10, 10) + b"\x00" * 50)
    with pytest.raises(UserError, match="header announces"):
        read_idx(short)
    short_gz = tmp_path / "short.gz"
    short_gz.write_bytes(gzip.compress(short.read_bytes()))
    with pytest.raises(UserError, match="header announces"):
        read_idx(short_gz)
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    with pytest.raises(UserError, match="cannot read"):
        read_idx(tmp_path / "missing")

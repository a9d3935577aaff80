"""Rank-deficient least squares (dead channels, repeated windows) are solved by Cholesky with a tiny
relative ridge instead of the SVD, with the minimum-norm solution's residual."""

from __future__ import annotations

import pytest
import torch

from prunebench.prune.activations import solve_normal
from prunebench.prune.regression import least_squares, relative_error
from prunebench.prune.thinet import rescale
from prunebench.prune.thinet import relative_error as thinet_error


def _rank_deficient(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """600 windows of 24 channels x 9 taps: 4 dead channels, 4 copies of others, a tap always in the padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(600, 24, 9, generator=g))
    x[:, :4] = 0
    x[:, 4:8] = x[:, 8:12]
    x[:, :, 0] = 0
    w = torch.randn(16, 24, 9, generator=g)
    y = x.reshape(600, -1) @ w.reshape(16, -1).T + 0.1 * torch.randn(600, 16, generator=g)
    return x, y


def _no_svd(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the SVD fallback ran")


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_least_squares_on_a_singular_system_matches_the_minimum_norm_residual(seed: int) -> None:
    x, y = _rank_deficient(seed)
    kept = list(range(20))  # the dead and the copied channels among them
    xs = x[:, kept].reshape(600, -1).double()
    assert torch.linalg.matrix_rank(xs.T @ xs) < xs.shape[1]
    min_norm = torch.linalg.lstsq(xs, y.double(), driver="gelsd").solution.T.reshape(16, len(kept), 9)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.linalg, "lstsq", _no_svd)
        ours = least_squares(x, y, kept)
    expected = relative_error(x, y, kept, min_norm)
    assert relative_error(x, y, kept, ours) == pytest.approx(expected, rel=1e-9)
    assert torch.isfinite(ours).all() and ours.abs().max() < 1e3  # the ridge keeps the null space tame


def test_thinet_rescaling_with_duplicate_channels_has_the_least_squares_residual() -> None:
    g = torch.Generator().manual_seed(2)
    xhat = torch.randn(300, 10, generator=g, dtype=torch.float64)
    xhat[:, 1] = xhat[:, 0]  # two identical kept channels: the normal matrix is singular
    kept = [0, 1, 2, 5]
    best = torch.linalg.lstsq(xhat[:, kept], xhat.sum(1, keepdim=True), driver="gelsd").solution[:, 0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.linalg, "lstsq", _no_svd)
        scale = rescale(xhat, kept)
    assert thinet_error(xhat, kept, scale) == pytest.approx(thinet_error(xhat, kept, best), rel=1e-9)


def test_a_regular_system_is_solved_exactly_and_an_all_zero_one_still_falls_back() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(50, 6, generator=g, dtype=torch.float64)
    b = torch.randn(50, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(solve_normal(a.T @ a, a.T @ b), torch.linalg.lstsq(a, b).solution)
    zero = torch.zeros(4, 4, dtype=torch.float64)
    assert torch.equal(solve_normal(zero, torch.zeros(4, 1, dtype=torch.float64)), torch.zeros(4, 1, dtype=torch.float64))

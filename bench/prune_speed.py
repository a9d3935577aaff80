"""Time of ThiNet's and the LASSO method's steps on full-width VGG-16 (CIFAR shape), and what caching saves.

Per layer: each conv's output group is scored on the unpruned network (keep ratio 0.5):
sampling the consumer's input windows, ThiNet's contributions + incremental greedy, the
LASSO's Gram terms + warm-started λ path, and each method's least-squares step; the
regression least squares is timed twice, as prunebench solves it (Cholesky, with a tiny
relative ridge when the system is singular) and with the SVD (`gelsd`) it used before,
with both residuals.  End to end: ThiNet on the whole network with each layer's sampling
resumed from cached activations against passes from the images every time (same result,
checked).  Inputs are random images (the timing does not depend on the data); weights
are the zoo's initialisation.  Prints Markdown tables.

    .venv/bin/python bench/prune_speed.py [--images 256] [--locations 10] [--threads N] [--smoke]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import sklearn.linear_model  # noqa: F401  (imported up front: its import time is not selection time)
import torch
from benchkit import machine_line, synthetic_cifar

from prunebench.models import variant
from prunebench.prune import get_method
from prunebench.prune.activations import as_channels, consumer_weight, contributions, sample_layer
from prunebench.prune.importance import keep_count
from prunebench.prune.regression import lasso_select, lasso_terms, least_squares, relative_error, response
from prunebench.prune.thinet import greedy_remove, rescale

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def svd_least_squares(x: torch.Tensor, y: torch.Tensor, kept: list[int]) -> torch.Tensor:
    """The previous fallback for a singular system: the minimum-norm solution of the normal equations."""
    xs = x[:, kept].reshape(x.shape[0], -1).double()
    sol = torch.linalg.lstsq(xs.T @ xs, xs.T @ y.double(), driver="gelsd").solution
    return sol.T.reshape(y.shape[1], len(kept), x.shape[2])


def per_layer(model: torch.nn.Module, images: torch.Tensor, locations: int, layers: int | None) -> None:
    print("| layer | C -> kept | samples | sampling s | ThiNet select s | ThiNet LS s "
          "| LASSO select s | λ fits | LASSO LS s | LASSO LS SVD s | residual | residual SVD |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    totals = [0.0] * 6
    for group in model.spec.groups()[:layers]:
        consumer = group.consumers[0]
        layer = model.get_submodule(consumer)
        keep = keep_count(group.size, 0.5)
        sample, t_sample = _timed(
            lambda: sample_layer(model, consumer, images, locations=locations, seed=0)  # noqa: B023
        )
        x = as_channels(sample, group.size)
        w = consumer_weight(layer, group.size)

        def thinet_select() -> tuple[torch.Tensor, list[int]]:
            xhat = contributions(x, w, seed=0)  # noqa: B023
            removed = set(greedy_remove(xhat, group.size - keep))  # noqa: B023
            return xhat, [c for c in range(group.size) if c not in removed]  # noqa: B023

        (xhat, kept), t_thinet = _timed(thinet_select)
        _, t_thinet_ls = _timed(lambda: rescale(xhat, kept))  # noqa: B023
        y = response(x, w)
        sel, t_lasso = _timed(lambda: lasso_select(lasso_terms(x, w, y), keep))  # noqa: B023
        new_w, t_lasso_ls = _timed(lambda: least_squares(x, y, sel.kept))  # noqa: B023
        svd_w, t_svd = _timed(lambda: svd_least_squares(x, y, sel.kept))  # noqa: B023
        err, err_svd = relative_error(x, y, sel.kept, new_w), relative_error(x, y, sel.kept, svd_w)
        row = [t_sample, t_thinet, t_thinet_ls, t_lasso, t_lasso_ls, t_svd]
        totals = [a + b for a, b in zip(totals, row)]
        print(f"| {group.name} | {group.size} -> {keep} | {sample.samples} | {t_sample:.3f} | {t_thinet:.3f} | "
              f"{t_thinet_ls:.3f} | {t_lasso:.3f} | {sel.path} | {t_lasso_ls:.3f} | {t_svd:.3f} "
              f"| {err:.3e} | {err_svd:.3e} |", flush=True)  # fmt: skip
    t = [f"{v:.2f}" for v in totals]
    print(f"| **total** | | | {t[0]} | {t[1]} | {t[2]} | {t[3]} | | {t[4]} | {t[5]} | | |")


def end_to_end(model: torch.nn.Module, images: int, locations: int, rounds: int) -> None:
    """ThiNet over the whole network, sampling resumed from cached activations or not."""
    splits = synthetic_cifar(max(images, 10))
    method = get_method("thinet")
    opts = method.parse_options({"ratio": 0.5, "images": images, "locations": locations})
    results, seconds = {}, {}
    for resume in (False, True) * rounds:  # alternating: both see the same background load
        method.resume_sampling = resume
        result, t = _timed(lambda: method.prune(model, splits, opts, seed=0))  # noqa: B023
        results[resume] = result
        seconds.setdefault(resume, []).append(t)
    same = results[True].kept == results[False].kept and all(
        torch.equal(a, b) for a, b in zip(results[True].model.state_dict().values(),
                                          results[False].model.state_dict().values())
    )  # fmt: skip
    plain, cached = min(seconds[False]), min(seconds[True])
    sampling = {r: sum(v.get("sampling", 0.0) for v in results[r].info["timings"].values()) for r in (False, True)}
    print(f"| ThiNet, whole network | wall s (best of {rounds}) | of which sampling s |")
    print("|---|---:|---:|")
    print(f"| every pass from the images | {plain:.2f} | {sampling[False]:.2f} |")
    print(f"| resumed from cached activations | {cached:.2f} | {sampling[True]:.2f} |")
    print(f"\nspeed-up {plain / cached:.2f}x; identical kept channels and weights: {same}")
    if not same:
        raise SystemExit("cached sampling changed ThiNet's result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="sampled images (default 256)")
    parser.add_argument("--locations", type=int, default=10, help="output positions per image (default 10)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds' check that the script runs (VGG-16 at 1/8 width, 8 images, "
                        "3 layers in the table): numbers mean nothing")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width = 0.125 if args.smoke else 1.0
    if args.smoke:
        args.images, args.locations = 8, 2
    torch.manual_seed(0)
    model = variant("vgg16", num_classes=10, in_channels=3, input_size=32, width_mult=width).build().eval()
    images = torch.randn(args.images, 3, 32, 32)
    print(f"# Pruning speed: VGG-16 (CIFAR, width {width:g}), {args.images} images x {args.locations} locations\n")
    print(machine_line() + "\n")
    per_layer(model, images, args.locations, 3 if args.smoke else None)
    print()
    end_to_end(model, args.images, args.locations, 1 if args.smoke else 2)


if __name__ == "__main__":
    main()

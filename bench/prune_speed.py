"""Per-layer time of ThiNet's and the LASSO method's channel selection on full-width VGG-16 (CIFAR shape).

Each conv's output group is scored on the unpruned network (keep ratio 0.5):
sampling the consumer's input windows, ThiNet's contributions + incremental greedy,
the LASSO's Gram terms + warm-started λ path, and each method's least-squares step.
Inputs are random images (the timing does not depend on the data); weights are the
zoo's initialisation.  Prints a Markdown table.

    .venv/bin/python bench/prune_speed.py [--images 256] [--locations 10] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

import sklearn.linear_model  # noqa: F401  (imported up front: its import time is not selection time)
import torch

from prunebench.models import variant
from prunebench.prune.activations import as_channels, consumer_weight, contributions, keep_count, sample_layer
from prunebench.prune.regression import lasso_select, lasso_terms, least_squares, response
from prunebench.prune.thinet import greedy_remove, rescale

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="sampled images (default 256)")
    parser.add_argument("--locations", type=int, default=10, help="output positions per image (default 10)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = variant("vgg16", num_classes=10, in_channels=3, input_size=32).build().eval()
    images = torch.randn(args.images, 3, 32, 32)
    print(f"# Pruning speed: VGG-16 (CIFAR, full width), {args.images} images x {args.locations} locations")
    print()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}")  # fmt: skip
    print()
    print("| layer | C -> kept | samples | sampling s | ThiNet select s | ThiNet LS s "
          "| LASSO select s | λ fits | LASSO LS s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    totals = [0.0] * 5
    for group in model.spec.groups():
        consumer = group.consumers[0]
        layer = model.get_submodule(consumer)
        keep = keep_count(group.size, 0.5)
        sample, t_sample = _timed(
            lambda: sample_layer(model, consumer, images, locations=args.locations, seed=0)  # noqa: B023
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
        _, t_lasso_ls = _timed(lambda: least_squares(x, y, sel.kept))  # noqa: B023
        row = [t_sample, t_thinet, t_thinet_ls, t_lasso, t_lasso_ls]
        totals = [a + b for a, b in zip(totals, row)]
        print(f"| {group.name} | {group.size} -> {keep} | {sample.samples} | {t_sample:.3f} | {t_thinet:.3f} | "
              f"{t_thinet_ls:.3f} | {t_lasso:.3f} | {sel.path} | {t_lasso_ls:.3f} |")  # fmt: skip
    t = [f"{v:.2f}" for v in totals]
    print(f"| **total** | | | {t[0]} | {t[1]} | {t[2]} | {t[3]} | | {t[4]} |")


if __name__ == "__main__":
    main()

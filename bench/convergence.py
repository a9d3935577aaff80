"""Convergence of the demo's large model: test accuracy at E and 2E epochs over seeds.

Trains the demo's large model as the shipped `demo` preset defines it (VGG-11 x0.25 on the
full Fashion-MNIST: 55,000 training images, the seeded 5,000-image validation split, the
10,000-image test set; its recipe at the given epochs) with the real trainer, one single-thread
process per job and `--jobs` at a time, and prints, per epoch count, each seed's test
accuracy at the best-on-validation checkpoint, their mean and sample std, and the paired
gain of each doubling. The model counts as converged at E when doubling to 2E gains less
than the seeds' spread.

    .venv/bin/python bench/convergence.py --epochs 6 12 24 --seeds 0 1 2 [--aug none|flip|pad2flip] [--smoke]

Runs are kept under --out (default: a temporary folder) and resume when rerun there.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
from pathlib import Path

from benchkit import demo_large, load_average, machine_line

#: `--aug`: the demo preset's data keys each choice sets
AUGMENTATION = {"none": ("data.crop_pad=0", "data.flip=false"), "flip": ("data.crop_pad=0", "data.flip=true"),
                "pad2flip": ("data.crop_pad=2", "data.flip=true")}


def run_one(job: tuple[str, int, int, str, bool]) -> tuple[int, int, float, float]:
    """(epochs, seed, test accuracy at the best-on-validation checkpoint, last epoch's train accuracy)."""
    import torch

    from prunebench.models import build_model
    from prunebench.train import seed_everything, train

    aug, epochs, seed, out, smoke = job
    torch.set_num_threads(1)
    splits, spec, recipe = demo_large(epochs, overrides=AUGMENTATION[aug], val_size=100 if smoke else None,
                                      train_subset=500 if smoke else None)
    seed_everything(seed)
    res = train(build_model(spec), splits, recipe, Path(out) / f"{aug}-e{epochs}-s{seed}", seed=seed,
                progress=False, tensorboard=False)
    assert res.test_acc_best_val is not None
    return epochs, seed, res.test_acc_best_val, res.history[-1]["train_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, nargs="+", default=[6, 12, 24])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--aug", choices=sorted(AUGMENTATION), default="none")
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time (default 2)")
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="500 images, 1 and 2 epochs, 2 seeds (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.seeds = [1, 2], [0, 1]
    print(machine_line())
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        jobs = [(args.aug, e, s, out, args.smoke) for e in sorted(args.epochs) for s in args.seeds]
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(run_one, jobs, chunksize=1)
    acc = {(e, s): a for e, s, a, _ in results}
    train_acc = {(e, s): t for e, s, _, t in results}
    print(f"augmentation: {args.aug}")
    print("| epochs | test % per seed | mean ± std | train % (last epoch) | gain of the doubling (paired) |")
    print("|---:|---|---|---|---|")
    for e in sorted(args.epochs):
        xs = [100 * acc[e, s] for s in args.seeds]
        std = statistics.stdev(xs) if len(xs) > 1 else float("nan")
        gain = ""
        if e // 2 in args.epochs and e % 2 == 0:
            diffs = [100 * (acc[e, s] - acc[e // 2, s]) for s in args.seeds]
            gain = f"{statistics.mean(diffs):+.2f} over {e // 2} epochs"
        trains = ", ".join(f"{100 * train_acc[e, s]:.1f}" for s in args.seeds)
        print(f"| {e} | {', '.join(f'{x:.2f}' for x in xs)} | {statistics.mean(xs):.2f} ± {std:.2f} | {trains} | {gain} |")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()

"""Training throughput (images/s) of VGG-16 and ResNet-56 on CIFAR-shaped input, fp32 vs fast mode.

Fast mode = bf16 autocast + channels_last (what `precision="auto"` picks on hardware
with native bf16). Each model runs one short epoch through the real trainer
(`prunebench.train.train`, augmentation and optimizer included) on random
CIFAR-shaped images; a callback timestamps every optimizer step, the first
`--warmup` steps are discarded and the rest timed. Both modes are measured in the
same process, alternating in `--rounds` rounds; the median step time gives
images/s (robust to other jobs stealing the CPU now and then). Prints a Markdown table.

    .venv/bin/python bench/train_throughput.py [--batch-size 64] [--steps 4] [--warmup 2]
                                               [--rounds 2] [--threads N]

Numbers in bench/README.md were taken on a shared 2-core machine while other jobs
were running: read them as a ratio between modes, not as absolute speeds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from benchkit import StepClock, load_average, synthetic_cifar

from prunebench.models import build_model, variant
from prunebench.train import Recipe, seed_everything, train
from prunebench.train.speed import cpu_has_bf16

MODELS = ("vgg16", "resnet56")
MODES: dict[str, dict[str, object]] = {
    "fp32": {"precision": "fp32", "channels_last": False},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
}


def step_seconds(name: str, mode: dict[str, object], batch_size: int, steps: int, warmup: int,
                 device: str | None) -> list[float]:
    """Durations of the timed optimizer steps of one short training run."""
    splits = synthetic_cifar(batch_size * (steps + warmup))
    seed_everything(0)
    model = build_model(variant(name, splits.info))
    clock = StepClock()
    recipe = Recipe(epochs=1, lr=0.05, batch_size=batch_size, **mode)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as out:
        train(model, splits, recipe, out, seed=0, callbacks=[clock], device=device, progress=False, eval_test=False)
    timed = clock.times[warmup - 1:]
    return [b - a for a, b in zip(timed, timed[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per model and mode, alternating the modes")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds' check that the script runs (tiny batch, one round): numbers mean nothing")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.steps, args.rounds, args.warmup, args.models = 4, 1, 1, 1, "resnet20"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the first timestamp starts the clock)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU bf16: {cpu_has_bf16()}, "
          f"batch {args.batch_size}, {args.rounds} rounds of {args.warmup} warm-up + {args.steps} timed steps, "
          f"images/s from the median step time; {load_average()}\n")
    print("| model | " + " | ".join(f"{m} (img/s)" for m in MODES) + " | speed-up |")
    print("|---|" + "---:|" * (len(MODES) + 1))
    for name in args.models.split(","):
        durations: dict[str, list[float]] = {label: [] for label in MODES}
        for _ in range(args.rounds):  # alternate the modes so both see the same background load
            for label, mode in MODES.items():
                durations[label] += step_seconds(name, mode, args.batch_size, args.steps, args.warmup, args.device)
        rates = [args.batch_size / statistics.median(durations[label]) for label in MODES]
        print(f"| {name} | " + " | ".join(f"{r:.1f}" for r in rates) + f" | {rates[-1] / rates[0]:.2f}x |", flush=True)

if __name__ == "__main__":
    main()

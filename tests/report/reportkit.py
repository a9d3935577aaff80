"""A hand-made experiment store with two methods, three amounts, four arms, three seeds and
per-epoch metrics: enough for the plots, the HTML report and the MLflow export, in milliseconds."""

from __future__ import annotations

from pathlib import Path

from prunebench.experiment import Store
from prunebench.experiment.graph import Stage

#: (method label, method name, params of the pruned model, base accuracy)
METHODS = (("l1norm-30%", "l1norm", 700, 0.90), ("l1norm-60%", "l1norm", 400, 0.86), ("slimming-50%", "slimming", 500, 0.89))
ARM_SHIFT = {"unpruned": 0.03, "finetuned": 0.0, "scratch_e": -0.01, "scratch_b": 0.01}
SEEDS = (0, 1, 2)
EPOCHS = 4


def fill(exp_dir: Path, name: str = "hand", methods: tuple[tuple[str, str, int, float], ...] = METHODS) -> None:
    store = Store.open(exp_dir)
    preset = {
        "seeds": list(SEEDS), "data": {"name": "fashion-mnist", "val_size": 0},
        "model": {"variant": "vgg11", "width_mult": 0.25}, "description": "hand-made", "notes": [],
        "methods": [{"label": label, "name": method, "options": {}} for label, method, _, _ in methods],
    }  # fmt: skip
    store.add_experiment(name, f"presets/{name}.toml", preset)
    for label, method, params, base in methods:
        for arm, shift in ARM_SHIFT.items():
            for seed in SEEDS:
                # unpruned is one stage per method family and seed, shared by its amounts
                key = f"{method}-{arm}-{seed}" if arm == "unpruned" else f"{label}-{arm}-{seed}"
                sid = key.encode().hex().ljust(64, "0")[:64]
                kind = "train_large" if arm == "unpruned" else {"finetuned": "finetune"}.get(arm, arm)
                stage = Stage(sid, kind, seed, {"recipe": {"lr": 0.05, "epochs": EPOCHS}}, {}, {}, (label,))
                store.add_stages(name, [stage], [(label, arm, sid, arm)])
                acc = (0.92 if arm == "unpruned" else base + shift) + 0.004 * (seed - 1)
                p = 1000 if arm == "unpruned" else params
                store.add_result(sid, arm, seed, primary_acc=acc, final_test_acc=acc, params_nonzero=p, flops=2000.0 * p,
                                 flops_mode="reference counter v1 at 1x28x28", latency_ms=1.0,
                                 arch={"widths": [64, "M", 128] if arm == "unpruned" else [32, "M", 64]})  # fmt: skip
                store.add_metrics(sid, [
                    {"epoch": e, "lr": 0.05 if e < 2 else 0.005, "train_loss": 2.0 / (e + 1), "train_acc": acc - 0.1 / (e + 1)}
                    for e in range(EPOCHS)
                ])  # fmt: skip
                store.set_budget(sid, epochs=EPOCHS, training_flops=1e12, wall_s=3.0)
                store.mark_done(sid)
    store.close()

"""The one trainer: recipes, the loop and its callbacks, checkpoints and speed switches."""

from prunebench.train.callbacks import BNL1Callback, Callback, MaskCallback, SaveInitCallback, TrainContext
from prunebench.train.checkpoint import load_model, save_model
from prunebench.train.evaluation import evaluate
from prunebench.train.loop import train
from prunebench.train.recipe import Recipe
from prunebench.train.result import TrainResult
from prunebench.train.seeding import seed_everything
from prunebench.train.speed import SpeedSettings, resolve_speed

__all__ = [
    "BNL1Callback",
    "Callback",
    "MaskCallback",
    "Recipe",
    "SaveInitCallback",
    "SpeedSettings",
    "TrainContext",
    "TrainResult",
    "evaluate",
    "load_model",
    "resolve_speed",
    "save_model",
    "seed_everything",
    "train",
]

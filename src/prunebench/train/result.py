"""`TrainResult`: the JSON record of a finished run (`out_dir/result.json`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunebench.errors import CheckpointError
from prunebench.train.checkpoint import atomic_write_text

RESULT_FILE = "result.json"


@dataclass
class TrainResult:
    """Accuracies are 0..1; epochs are 0-based.

    `test_acc` is the final model's, `test_acc_best_val` the best-on-validation
    model's (equal to `test_acc` without a validation split). The test set never
    selects anything; `best_test_acc_compat` (max test accuracy over epochs, only
    with `test_every_epoch`) is the reference-compatible, optimistic number.
    """

    final_val_acc: float | None
    best_val_acc: float | None
    best_epoch: int | None
    test_acc: float | None
    test_acc_best_val: float | None
    best_test_acc_compat: float | None
    epochs: int
    steps: int
    images_seen: int
    wall_time_s: float
    precision: str
    device: str
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainResult":
        return cls(**d)

    def save(self, out_dir: Path) -> None:
        atomic_write_text(out_dir / RESULT_FILE, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, out_dir: Path) -> "TrainResult":
        path = out_dir / RESULT_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
            raise CheckpointError(f"{path}: not a valid training result ({str(e).splitlines()[0][:200]})") from None

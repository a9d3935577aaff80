"""One big stage on several processes: a stage whose recipe says `nproc = K` is computed under
`torchrun --standalone --nproc_per_node K` (train/distributed.py: sharded batches, all-reduced
gradients, rank 0 alone writes the stage folder).

The process that was handed the stage (in-process, a pool worker or a Ray task) launches torchrun
and waits; every rank computes the stage (`compute_stage`, its trainer data-parallel), and rank 0
hands the stage's record back through a file.  The task and the record travel as pickles of plain
data in a private temporary folder (never checkpoints: those stay safetensors).  Each rank exits
when the launching process dies, so a killed run leaves no ranks training on.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.experiment.claims import process_alive, process_start

PARENT_ENV = "PRUNEBENCH_DDP_PARENT"  # "pid:start" of the launching process
WATCH_S = 0.5


def stage_nproc(stage: Any) -> int:
    """How many data-parallel processes a stage's recipe asks for (1 when it has none)."""
    return int((stage.config.get("recipe") or {}).get("nproc", 1))


def compute_under_torchrun(task: Any, nproc: int) -> Any:
    """Compute `task`'s stage under torchrun with `nproc` ranks; returns rank 0's StageRecord."""
    with tempfile.TemporaryDirectory(prefix="prunebench-ddp-") as tmp:
        task_file, record_file, log = Path(tmp, "task.pkl"), Path(tmp, "record.pkl"), Path(tmp, "stderr.log")
        task_file.write_bytes(pickle.dumps(dataclasses.replace(task, attach=False)))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "prunebench.experiment.ddp_stage", str(task_file), str(record_file)]  # fmt: skip
        pid = os.getpid()
        env = {**os.environ, PARENT_ENV: f"{pid}:{process_start(pid) or ''}"}
        with log.open("w") as err:
            rc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=err).returncode
        text = log.read_text(errors="replace")
        sys.stderr.write(text)  # the ranks' epoch lines, as a stage in this process would print them
        if rc != 0 or not record_file.exists():
            lines = [line for line in text.splitlines() if line.strip() and not line.startswith(("[W", "W1", "E1"))]
            raise PrunebenchError(f"stage {task.stage.dirname} under torchrun ({nproc} processes) failed (exit {rc}): "
                                  f"{lines[-1] if lines else 'no output'}")  # fmt: skip
        record = pickle.loads(record_file.read_bytes())
    record.extra = {**record.extra, "nproc": nproc}
    return record


def _exit_with_launcher() -> None:
    pid_text, _, start = os.environ.get(PARENT_ENV, "").partition(":")
    if not pid_text:
        return
    pid = int(pid_text)

    def watch() -> None:
        while process_alive(pid, start or None):
            time.sleep(WATCH_S)
        os._exit(70)  # the stage is resumed from state/ by whoever runs it next

    threading.Thread(target=watch, name="prunebench-ddp-watchdog", daemon=True).start()


def main(task_file: str, record_file: str) -> int:
    """One rank (run by torchrun)."""
    from prunebench.experiment.stages import compute_stage
    from prunebench.train import distributed

    _exit_with_launcher()
    task = pickle.loads(Path(task_file).read_bytes())
    rank = distributed.init(task.device)
    try:
        record = compute_stage(task)
        if rank.main:
            tmp = Path(f"{record_file}.tmp")
            tmp.write_bytes(pickle.dumps(record))
            os.replace(tmp, record_file)
        rank.barrier()  # no rank leaves (and tears the group down) while another still trains
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

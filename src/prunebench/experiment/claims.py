"""Who is running a stage, and whether they still are.

Before a process runs a stage it *claims* it in the store (`Store.claim`): one
row naming the claimant's host, pid and process start time, a random token and
a lease.  A claim is dead when, on this host, neither the claimant nor the
worker running the stage for it is alive (a pid that was reused by another
process does not count: the start time differs), and, for a claim of another
host, when its lease was not renewed in time (`Heartbeat` renews it while the
claimant lives).  A dead claim may be taken over; a live one is waited for.

The claimant is whoever schedules the stage, not necessarily whoever computes
it: the runner claims for its pool workers, and a distributed driver would
claim on its remote workers' behalf (only the driver writes the store).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunebench.train.checkpoint import pid_alive

#: Seconds a claim of another host stays valid without a renewal; renewed every LEASE_S / 4.
LEASE_S = 60.0


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


_BOOT = _boot_id()
HOST = socket.gethostname()


def process_start(pid: int) -> str | None:
    """A token that differs between two processes that had the same pid: boot id + start time.

    None where the system does not say (no /proc): then only the pid is compared.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing one
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"{_BOOT}:{fields[19]}"  # field 22 of stat: start time in clock ticks since boot


def process_alive(pid: int | None, start: str | None) -> bool:
    """Whether process `pid` of this host is alive and is the one that started at `start`."""
    if not pid or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel directly
        return pid_alive(pid)
    state = stat[stat.rindex(")") + 2 :].split()[0]
    if state in ("Z", "X"):  # a zombie has exited; only its parent has not reaped it yet
        return False
    return start is None or process_start(pid) in (None, start)


@dataclass(frozen=True)
class Claimant:
    """The identity a claim is taken under."""

    host: str
    pid: int
    start: str | None
    token: str
    lease_s: float = LEASE_S

    @classmethod
    def this_process(cls, lease_s: float = LEASE_S) -> Claimant:
        pid = os.getpid()
        return cls(HOST, pid, process_start(pid), uuid.uuid4().hex, lease_s)


def claim_alive(row: Any, now: float | None = None) -> bool:
    """Whether a claim row (claims table) still stands."""
    if row["host"] == HOST and (not row["start"] or row["start"].split(":")[0] == _BOOT):
        return process_alive(row["pid"], row["start"]) or process_alive(row["worker_pid"], row["worker_start"])
    now = time.time() if now is None else now
    return float(row["renewed"]) + float(row["lease_s"]) > now


class Heartbeat:
    """Renews a claimant's claims every `lease_s / 4` seconds in a daemon thread (own connection).

    A failure to write is kept in `error` for the scheduling loop to raise; the thread then stops.
    """

    def __init__(self, store_path: Path, claimant: Claimant) -> None:
        self.error: BaseException | None = None
        self._path, self._claimant = store_path, claimant
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="prunebench-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        from prunebench.experiment.store import Store

        interval = self._claimant.lease_s / 4
        while not self._stop.wait(interval):
            try:
                store = Store(self._path)
                try:
                    store.renew(self._claimant.token)
                finally:
                    store.close()
            except BaseException as e:  # noqa: BLE001 - handed to the scheduling loop
                self.error = e
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

"""SIGKILL a replica mid-request: while it holds requests and its event loop waits for I/O.

Why that moment and not any instant: a kill in the milliseconds between a replica's header and body
writes cuts that answer after nginx has passed its header on, and no proxy can retry a response it has
begun (bench.scale saw it in 3 of 18 runs when killing at a random instant). Killing while the loop
sits in epoll_wait with requests queued or inside an inference tests what nginx guarantees: every
request a dead replica held is answered by another. docs/scale-out.md has the details.
"""

from __future__ import annotations

import os
import platform
import signal
import time
from pathlib import Path

import httpx

from bench.server import Server


def in_flight(server: Server) -> int:
    """Requests the replica holds right now (running + waiting for a slot), from its /metrics."""
    text = httpx.get(server.url + "/metrics", timeout=5).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith(("deblur_queue_waiting ", "deblur_inference_running "))}
    return int(sum(values.values()))


# epoll_wait / epoll_pwait / epoll_pwait2 in /proc/PID/syscall: the event loop is waiting for I/O
EPOLL_WAITS = {"x86_64": {"232", "281", "441"}, "aarch64": {"22", "441"}}


def loop_waiting(pid: int) -> bool:
    """True when the (stopped) process's main thread, uvicorn's event loop, sits in epoll_wait."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return bool(fields) and fields[0] in EPOLL_WAITS.get(platform.machine(), set())


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def kill_mid_load(victim: Server, at: float, record: dict) -> None:
    """At `at` s, SIGKILL the victim once it holds requests and its event loop waits for I/O: SIGSTOP,
    look at /proc/PID/syscall, then SIGKILL, or SIGCONT and try again 2 ms later (10 s at most)."""
    time.sleep(at)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = in_flight(victim)
        os.kill(victim.pid, signal.SIGSTOP)
        while not stopped(victim.pid):
            time.sleep(0.0005)
        if held and loop_waiting(victim.pid):
            os.kill(victim.pid, signal.SIGKILL)
            break
        os.kill(victim.pid, signal.SIGCONT)
        time.sleep(0.002)
    else:
        os.kill(victim.pid, signal.SIGKILL)  # never idle with work: kill anyway, the report will say so
        held = -1
    assert victim.proc is not None
    victim.proc.wait(10)
    record.update(killed_at_s=round(at, 1), in_flight_when_killed=held, exit=victim.proc.returncode)

"""A worker process ends with the sweep that started it.

joblib's workers (loky) outlive a sweep process killed with SIGKILL: no handler runs, and each
worker trains its job to the end and writes its results into a sweep nobody runs any more,
while the same command, run again, starts the job a second time beside it. So the sweep's
main process leaves its pid in the environment, and a job that finds itself in a child of
that process watches its parent: once the process is reparented (its parent died), it ends
itself with SIGTERM. Its job then has no result (metrics.json is written last), and the
kernel releases the job's folder lock. Not a prctl(PR_SET_PDEATHSIG): that fires when the
*thread* that forked the worker ends, which in loky is not the sweep's end.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import time

ENV_MAIN = "WDSWEEP_MAIN_PROCESS"  # "<host>:<pid>" of the sweep's main process
POLL_SECONDS = 1.0
_watching = False


def mark_main_process() -> None:
    """Called by `python -m wdsweep` before any worker exists."""
    os.environ[ENV_MAIN] = f"{socket.gethostname()}:{os.getpid()}"


def in_main_process() -> bool:
    """Whether this is the sweep's main process (`python -m wdsweep`), where in-process
    launchers run their jobs."""
    host, _, pid = os.environ.get(ENV_MAIN, "").rpartition(":")
    return bool(pid) and host == socket.gethostname() and os.getpid() == int(pid)


def watch_parent() -> None:
    """In a worker of the sweep's main process: end this process when the main process is
    gone, now or later. Nothing in the main process itself, nor in a process started another
    way (submitit's jobs, another host). Once per process."""
    global _watching
    host, _, pid = os.environ.get(ENV_MAIN, "").rpartition(":")
    if _watching or not pid or host != socket.gethostname() or os.getpid() == int(pid):
        return
    main = int(pid)
    if os.getppid() != main:
        if not _alive(main):  # a worker that started its job after the sweep was killed
            os.kill(os.getpid(), signal.SIGTERM)
        return
    _watching = True

    def watch() -> None:
        while os.getppid() == main:
            time.sleep(POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="wdsweep-lifeline", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds the pid
        return True
    return True

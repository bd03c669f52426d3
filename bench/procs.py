"""Processes under measurement: start (optionally pinned), wait for readiness,
read their memory and CPU time, and always stop them, on any exit path."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """``cmd`` under ``taskset -c cpus`` (taskset execs, so the pid stays the same)."""
    if cpus is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", cpus, *cmd]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.popen.pid)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        try:
            times = self.ps.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        try:
            return float(self.ps.memory_info().rss) / 2**20
        except psutil.Error:
            return 0.0

    def peak_rss_mb(self) -> float:
        """The kernel's high-water mark (VmHWM): the true peak, not a sample."""
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return self.rss_mb()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


class ProcessGroup:
    """Every process the bench starts; stopped in reverse order at exit or on a signal."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []
        atexit.register(self.stop_all)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop_all()
        raise SystemExit(128 + signum)

    def start(
        self,
        name: str,
        cmd: list[str],
        port: int,
        ready_url: str,
        cpus: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60.0,
    ) -> Proc:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                pinned(cmd, cpus),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # a Ctrl-C in the terminal goes to the bench only
            )
        proc = Proc(name, popen, port, log_path)
        self.procs.append(proc)
        wait_ready(proc, ready_url, timeout)
        return proc

    def stop_all(self) -> None:
        while self.procs:
            self.procs.pop().stop()


def wait_ready(proc: Proc, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before {url} answered:\n"
                f"{proc.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise TimeoutError(
        f"{proc.name}: {url} not ready within {timeout}s ({last})\n{proc.log_tail()}"
    )


def raise_fd_limit() -> None:
    """500 streams need ~1,000 sockets in the proxy; children inherit this limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class CpuMeter:
    """Busy CPU time of the whole machine versus our own processes over an interval,
    so each result says how much CPU other sessions took while it was measured."""

    def __init__(self, ours: list[Proc]) -> None:
        self.ours = ours
        self._t0 = 0.0
        self._busy0 = 0.0
        self._ours0 = 0.0

    @staticmethod
    def _busy_seconds() -> float:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        return float(sum(times) - idle)

    def _ours(self) -> float:
        # The servers, plus this process and its reaped children (wrk runs).
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        return mine + sum(p.cpu_seconds() for p in self.ours)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = self._busy_seconds()
        self._ours0 = self._ours()

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._t0, 1e-9)
        busy = self._busy_seconds() - self._busy0
        ours = self._ours() - self._ours0
        cores = os.cpu_count() or 1
        return {
            "machine_busy_pct": round(100 * busy / (wall * cores), 1),
            "foreign_cpu_pct": round(100 * max(busy - ours, 0.0) / (wall * cores), 1),
        }

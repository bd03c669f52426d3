"""A real PostgreSQL server on a free loopback port, for tests that need one.

``initdb`` + ``postgres`` from the Debian packages (``/usr/lib/postgresql/*/bin``
or ``PATH``), run as the ``postgres`` OS user when the tests run as root (the
server refuses to run as root). The data directory and the unix socket live in
a temp dir; ``fsync=off`` and friends trade durability for speed, which a test
server does not need. ``database(name)`` creates a fresh database and returns
its ``postgresql+asyncpg://`` URL, so tests do not see each other's rows.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

USER = "gateway"
PASSWORD = "gateway-test-password"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, newest version first."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if os.access(os.path.join(directory, "initdb"), os.X_OK):
            return Path(directory)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def available() -> bool:
    return find_bindir() is not None


class PostgresServer:
    """One ``postgres`` process with a superuser ``gateway``; ``url`` is asyncpg-style."""

    def __init__(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="gw-pg-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0
        self._db_counter = 0

    # --- URLs ----------------------------------------------------------------

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for("gateway")

    # --- process ---------------------------------------------------------------

    def _as_postgres(self) -> dict[str, object]:
        # The server refuses to run as root: drop to the ``postgres`` OS user
        # in the child itself (no runuser in between, so signals reach it).
        if not self._as_root:
            return {}
        return {"user": "postgres", "group": "postgres", "extra_groups": []}

    def start(self, timeout: float = 30.0) -> str:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD)
        if self._as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(
            [
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
                f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8",
                "--no-locale", "--no-sync",
            ],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root,
            **self._as_postgres(),  # type: ignore[call-overload]
        )  # fmt: skip
        return self._launch(timeout)

    def stop(self) -> None:
        """Stop the server, keeping its data (``resume`` starts it again)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=15)

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT, as ``pg_ctl -m immediate``): no checkpoint,
        WAL not yet written from shared memory is gone, as in a server crash.
        ``resume`` starts it again with crash recovery."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            proc.wait(timeout=15)

    def freeze(self) -> None:
        """SIGSTOP the server and its backends: connections stay open and nothing
        answers, as in a network partition or on a frozen host."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:  # the backends are the postmaster's children
                pids.append(int(stat.parent.name))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def resume(self, timeout: float = 30.0) -> str:
        """Start a stopped server again on the same port and data directory."""
        return self._launch(timeout, create=False)

    def _launch(self, timeout: float, create: bool = True) -> str:
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", str(self.root),
                "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200",
                "-c", "shared_buffers=32MB",
            ],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
            **self._as_postgres(),  # type: ignore[call-overload]
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            if self._ready():
                if create:
                    self.create_database("gateway")
                return self.url
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"postgres did not start in {timeout}s:\n{self.log_text()}")

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            check=False,
        )
        return result.returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through ``psql`` (autocommit: CREATE DATABASE works)."""
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        result = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
             "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        return result.stdout.decode()

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """A new database (empty, or a copy of ``template``); returns its URL."""
        if name is None:
            self._db_counter += 1
            name = f"t{os.getpid()}_{self._db_counter}"
        suffix = f' TEMPLATE "{template}"' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{suffix}')
        return self.url_for(name)

    def log_text(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: disconnects clients
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def postgres_fixture() -> Iterator[PostgresServer]:
    """Body of the session-scoped ``postgres`` fixture; conftests wrap it with
    ``pytest.fixture(scope="session")`` (see ``tests/ops/conftest.py``). Skips
    only when PostgreSQL is not installed; ``scripts/test`` installs it."""
    import pytest

    if not available():
        pytest.skip("PostgreSQL is not installed (scripts/test installs it)")
    with PostgresServer() as server:
        yield server


def migrated_database(server: PostgresServer) -> str:
    """A fresh database brought to head by the real ``gateway db upgrade``."""
    import sys

    url = server.create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "db", "upgrade"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"gateway db upgrade failed:\n{result.stdout}\n{result.stderr}")
    return url

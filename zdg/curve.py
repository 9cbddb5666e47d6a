"""CURVE encryption for edges that cross boxes and for secure outside topics: key pairs from `zdg keys`.

A box's key folder holds its own `<box>.key_secret` and the public `<box>.key` of every box of the
graph and of every client (a subscriber named with `--client`). The binding end of a crossing edge,
and the publisher of a secure topic, is the CURVE server and admits only keys in that folder; refused
handshakes (a key not in the folder, or no CURVE at all) are counted. Keys are files, never YAML.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from zdg.private import private_dir, private_file

log = logging.getLogger("zdg.curve")


class MissingKeyError(LookupError):
    """A key file a crossing edge needs is missing."""


LOCAL_BOX = "local"  # the box of nodes without `host:` (its keys serve the graph's secure topics)
REFUSED_HANDSHAKES = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL  # peers without CURVE


def generate_keys(hosts: list[str], out_dir: Path, clients: list[str] | None = None,
                  box_owner: int | None = None) -> list[Path]:
    """Make a key pair per box and per client (existing pairs are kept) and a folder for each: a box's to mount
    there (its secret, every box's and client's public key), a client's for `zdg sub --keys` (its secret, every
    box's public key). Every folder is 0700 and every secret key 0600, whatever the umask; `box_owner`: the uid
    the boxes' folders are given to (the containers' user, which must read them)."""
    clients = clients or []
    pairs = private_dir(out_dir / "pairs")
    for name in hosts + clients:
        if not (pairs / f"{name}.key_secret").exists():
            zmq.auth.create_certificates(str(pairs), name)
        (pairs / f"{name}.key_secret").chmod(0o600)
    folders = []
    for name in hosts + clients:
        folder = private_dir(out_dir / name, box_owner)
        private_file(folder / f"{name}.key_secret", (pairs / f"{name}.key_secret").read_bytes())
        for other in hosts if name in clients else hosts + clients:
            shutil.copyfile(pairs / f"{other}.key", folder / f"{other}.key")
        if box_owner is not None and name not in clients:
            for path in (folder, *folder.iterdir()):
                os.chown(path, box_owner, -1)
        folders.append(folder)
    return folders


class CurveKeys:
    """The key folder of one box, used to secure the sockets of its crossing edges."""

    def __init__(self, folder: Path, host: str) -> None:
        self.folder = folder
        self.host = host
        self.refused = 0  # peers with a key not in the folder (ZAP), and peers without CURVE (handshake)
        self._auth: ThreadAuthenticator | None = None
        self._monitors: list[zmq.Socket] = []

    def _load(self, name: str, secret: bool) -> tuple[bytes, bytes | None]:
        path = self.folder / (f"{name}.key_secret" if secret else f"{name}.key")
        if not path.exists():
            raise MissingKeyError(f"{path}: missing CURVE key of box {name!r} (make them with `zdg keys GRAPH -o DIR`)")
        return zmq.auth.load_certificate(str(path))

    def callback(self, domain: str, client_key: bytes) -> bool:
        """ZAP check: the client's public key (Z85 text) is one of this folder's."""
        known = {zmq.auth.load_certificate(str(p))[0] for p in self.folder.glob("*.key")}
        allowed = client_key in known
        if not allowed:
            self.refused += 1
            log.warning("refused a peer with an unknown CURVE key (%d so far)", self.refused)
        return allowed

    def serve(self, sock: zmq.Socket) -> None:
        """Make `sock` a CURVE server that admits only this folder's public keys."""
        if self._auth is None:
            self._auth = ThreadAuthenticator(sock.context)
            self._auth.start()
            self._auth.configure_curve_callback("*", credentials_provider=self)
        public, secret = self._load(self.host, secret=True)
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_server = True
        self._monitors.append(sock.get_monitor_socket(REFUSED_HANDSHAKES))

    def count_refused(self) -> int:
        """Peers refused so far: a key not in the folder, or no CURVE at all (a plaintext subscriber)."""
        for monitor in self._monitors:
            with contextlib.suppress(zmq.Again):
                while True:
                    monitor.recv_multipart(zmq.NOBLOCK)
                    self.refused += 1
                    log.warning("refused a peer without CURVE (%d refused so far)", self.refused)
        return self.refused

    def connect_to(self, sock: zmq.Socket, server_host: str) -> None:
        """Make `sock` a CURVE client of `server_host`'s box."""
        public, secret = self._load(self.host, secret=True)
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey = self._load(server_host, secret=False)[0]

    def close(self) -> None:
        for monitor in self._monitors:
            monitor.close(linger=0)
        if self._auth is not None:
            self._auth.stop()

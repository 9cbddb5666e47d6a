"""A pre-loaded parent that forks `zdg run`'s node processes: the heavy imports happen once, not once per node.

`zdg run` forks the zygote before it starts any thread; the zygote imports what the graph's nodes
declare in `Node.preload` while the runner starts shared services (the embedded store), then forks
one child per request, which calls the request's target (`module:function`, with keyword arguments)
and knows nothing else of the zygote: its own session, the environment it was given, gone when the
zygote (hence the runner) dies. The zygote reports each child's pid and, once reaped, its exit
status; the runner sees them through `ForkedProcess`, which answers like subprocess.Popen.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import logging
import os
import selectors
import signal
import sys
import threading
from collections.abc import Iterable

log = logging.getLogger("zdg.zygote")
REAP_EVERY_S = 0.05


def die_with_parent() -> None:
    """SIGTERM when the parent process dies (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def name_process(name: str) -> None:
    """What `top` and `ps -o comm` show for this process (Linux keeps 15 bytes)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(15, name.encode()[:15])  # PR_SET_NAME


def preload(modules: Iterable[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # the node itself will say what is missing, in its own log
            log.debug("preload %s: %s", name, exc)


def _child(request: dict, fds: tuple[int, ...]) -> None:
    """In the forked child: run the request's target and never return."""
    code = 1
    try:
        for fd in fds:
            os.close(fd)
        os.setsid()
        die_with_parent()
        name_process(request["name"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        module, _, function = request["target"].partition(":")
        code = getattr(importlib.import_module(module), function)(**request["kwargs"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever it was, the child reports it and exits
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code or 0)


def _serve(requests: int, replies: int, modules: list[str]) -> None:
    """The zygote's loop: preload, then fork a child per request line and report pids and exits."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle (it drains the nodes)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    preload(modules)
    out = os.fdopen(replies, "w", buffering=1)
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ)
    children: set[int] = set()
    pending = b""
    while True:
        if selector.select(REAP_EVERY_S):
            chunk = os.read(requests, 1 << 16)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request, (requests, replies))
                children.add(pid)
                out.write(json.dumps({"pid": pid}) + "\n")
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                out.write(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")


class Zygote:
    """The runner's side: start the zygote (before any thread), ask it for children, learn their exits."""

    def __init__(self, modules: list[str], stderr_fd: int | None = None) -> None:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(request_w)
                os.close(reply_r)
                if stderr_fd is not None:
                    os.dup2(stderr_fd, 2)
                _serve(request_r, reply_w, modules)
            finally:
                os._exit(0)
        os.close(request_r)
        os.close(reply_w)
        self.pid = pid
        self.requests = os.fdopen(request_w, "w", buffering=1)
        self.replies = os.fdopen(reply_r, "r")
        self.lock = threading.Lock()
        self.exits: dict[int, int] = {}
        self.changed = threading.Condition()
        self.pids: list[int] = []
        self.gone = False  # the zygote ended (killed): its children got SIGTERM with it, no new ones start
        threading.Thread(target=self._read, daemon=True, name="zygote-replies").start()

    def _read(self) -> None:
        for line in self.replies:
            reply = json.loads(line)
            with self.changed:
                if "pid" in reply:
                    self.pids.append(reply["pid"])
                else:
                    self.exits[reply["exit"]] = reply["code"]
                self.changed.notify_all()
        with self.changed:
            self.gone = True
            self.changed.notify_all()

    def spawn(self, target: str, kwargs: dict, env: dict[str, str], name: str) -> ForkedProcess:
        """A child calling `target` (`module:function`) with `kwargs` (JSON values), with exactly `env`; `name` is
        what `ps` shows."""
        request = {"target": target, "kwargs": kwargs, "env": env, "name": name}
        with self.lock, self.changed:
            self.requests.write(json.dumps(request) + "\n")
            if not self.changed.wait_for(lambda: self.pids or self.gone, timeout=30) or not self.pids:
                raise RuntimeError("the zygote that forks node processes has ended or does not answer")
            return ForkedProcess(self, self.pids.pop(0))

    def close(self) -> None:
        """End the zygote (its children have ended or get SIGTERM with it) and reap it."""
        with contextlib.suppress(OSError):
            self.requests.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class ForkedProcess:
    """A zygote's child, seen like subprocess.Popen: pid, poll(), wait(), send_signal(), returncode."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote = zygote
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        with self.zygote.changed:
            self._update()
        return self.returncode

    def wait(self) -> int:
        with self.zygote.changed:
            self.zygote.changed.wait_for(lambda: self.pid in self.zygote.exits or self.zygote.gone)
            self._update()
        return self.returncode

    def _update(self) -> None:
        """The exit the zygote reported; with the zygote gone, the SIGTERM its death sent (reported by nobody)."""
        exits = self.zygote.exits
        self.returncode = exits.get(self.pid, -signal.SIGTERM if self.zygote.gone else self.returncode)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

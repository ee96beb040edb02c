"""A TCP proxy in front of PostgreSQL that cuts a connection exactly when its client sends COMMIT,
so that a test can make the one failure whose outcome the client cannot know: a write whose
COMMIT was sent and whose answer never came.

It reads the PostgreSQL protocol only as far as it must: the untyped startup message, then typed
messages (a type byte and a length). psycopg sends COMMIT as a simple Query message. Clients must
connect with sslmode=disable and gssencmode=disable (see `url`), so the stream is plain.
"""

import contextlib
import socket
import threading
from collections.abc import Callable

from psycopg.conninfo import conninfo_to_dict, make_conninfo

BEFORE = "before"  # the COMMIT never reaches the server: nothing commits
AFTER = "after"  # the server commits and answers; the answer never reaches the client
_ENCRYPTION_REQUESTS = (80877103, 80877104)  # SSLRequest, GSSENCRequest: another untyped one


def _messages(buffer: bytearray, typed: bool):
    """Complete messages at the start of `buffer`, removed from it as they are yielded."""
    while True:
        head = 5 if typed else 4
        if len(buffer) < head:
            return
        length = int.from_bytes(buffer[head - 4 : head], "big") + (1 if typed else 0)
        if len(buffer) < length:
            return
        message = bytes(buffer[:length])
        del buffer[:length]
        yield message


def _is_commit(message: bytes) -> bool:
    return message[:1] == b"Q" and message[5:].rstrip(b"\0").strip().upper() == b"COMMIT"


class CommitCutter:
    """Listens on a free port; each connection goes to `target()` (a port on 127.0.0.1, asked
    per connection, so it may follow a moving primary). `arm()` makes the next COMMIT on any
    connection the cut one."""

    def __init__(self, target: Callable[[], int | None]):
        self.target = target
        self.cut = threading.Event()  # set once a connection has been cut
        self._armed: dict | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, conninfo: str) -> str:
        """`conninfo` (a URL or key=value string) pointed at this proxy."""
        params = conninfo_to_dict(conninfo)
        params.update(host="127.0.0.1", port=str(self.port))
        params.pop("target_session_attrs", None)
        return make_conninfo(**params, sslmode="disable", gssencmode="disable")

    def arm(self, mode: str, then: Callable[[], None] | None = None, half_open=False) -> None:
        """Cuts the next COMMIT: `BEFORE` forwarding it or `AFTER` the server has answered it.
        `then` runs at that moment, before the cut (say, to kill the primary). With `half_open`
        only the client's side is closed: the server keeps its session, as it would across a
        network partition, until one of its own timeouts ends it."""
        with self._lock:
            self.cut.clear()
            self._armed = {"mode": mode, "then": then, "half_open": half_open}

    def _take_armed(self) -> dict | None:
        with self._lock:
            armed, self._armed = self._armed, None
            return armed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            if self._closed:
                sock.close()
                raise OSError("the proxy is closed")
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._closed:
            try:
                client = self._track(self._listener.accept()[0])
            except OSError:
                return
            port = self.target()
            try:
                if port is None:
                    raise OSError("no target")
                server = self._track(socket.create_connection(("127.0.0.1", port), timeout=2))
                server.settimeout(None)
            except OSError:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                continue
            link = {"client": client, "server": server, "swallow": None}
            threading.Thread(target=self._upstream, args=(link,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), daemon=True).start()

    def _cut(self, link: dict, armed: dict) -> None:
        if armed["then"] is not None:
            armed["then"]()
        self.cut.set()  # before the client can notice
        sides = ["client"] if armed["half_open"] else ["client", "server"]
        for side in sides:
            with contextlib.suppress(OSError):
                link[side].shutdown(socket.SHUT_RDWR)
        # A half-open server side stays open until the proxy closes.

    def _upstream(self, link: dict) -> None:
        """Client to server, message by message, watching for COMMIT."""
        buffer, typed = bytearray(), False
        with contextlib.suppress(OSError):
            while data := link["client"].recv(65536):
                buffer += data
                out = bytearray()
                for message in _messages(buffer, typed):
                    if not typed:
                        typed = int.from_bytes(message[4:8], "big") not in _ENCRYPTION_REQUESTS
                    elif _is_commit(message) and (armed := self._take_armed()):
                        link["server"].sendall(out)
                        if armed["mode"] == BEFORE:
                            self._cut(link, armed)
                            return
                        link["swallow"] = armed  # the downstream cuts after the answer
                        out = bytearray()
                    out += message
                link["server"].sendall(out)
        with contextlib.suppress(OSError):
            link["server"].shutdown(socket.SHUT_WR)

    def _downstream(self, link: dict) -> None:
        """Server to client; after a watched COMMIT, its answer is read up to ReadyForQuery and
        dropped, then the connection is cut. (The client sent COMMIT only once it had every
        earlier answer, so the answer starts on a message boundary.)"""
        buffer = bytearray()
        with contextlib.suppress(OSError):
            while data := link["server"].recv(65536):
                armed = link["swallow"]
                if armed is None:
                    link["client"].sendall(data)
                    continue
                buffer += data
                if any(message[:1] == b"Z" for message in _messages(buffer, typed=True)):
                    self._cut(link, armed)
                    return
        with contextlib.suppress(OSError):
            link["client"].shutdown(socket.SHUT_WR)

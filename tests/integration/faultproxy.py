"""faultproxy: a small TCP proxy on 127.0.0.1 that injects network faults
between a cloud backend and its server, switchable at run time, so the tests
can prove that every failure a real network produces ends in a clear error
(and never in wrong bytes accepted as good) and that service resumes when
the network does.

  FaultProxy(target_port).start()   listens on .port, forwards to target
  .mode = "pass"      forward both ways untouched
          "refuse"    accept and close at once (reset), as a dead service
          "http500"   answer every request with HTTP/1.1 500, never forward
          "stall"     accept, read, never answer: a frozen server or a
                      black-holed route
          "truncate"  forward the request, then pass on the reply's headers
                      and half of its body, and close
  .close()            stops listening and drops every connection

A mode applies to connections accepted after it is set; switching also
drops the open ones, so a pooled keep-alive connection cannot carry on in
the previous mode.  Standard library only; one thread per connection.
"""
import socket
import struct
import threading

MODES = ("pass", "refuse", "http500", "stall", "truncate")
BUF = 65536
HTTP500 = (b"HTTP/1.1 500 Internal Server Error\r\n"
           b"Content-Type: text/plain\r\nContent-Length: 21\r\n"
           b"Connection: keep-alive\r\n\r\ninjected server error")


def _read_headers(sock, buf=b""):
    """Reads until the end of an HTTP header block: (head, rest) or None."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(BUF)
        if not chunk:
            return None
        buf += chunk
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def _content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def _close_hard(sock):
    """Close with a reset rather than a FIN, as a dead service does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    def __init__(self, target_port, target_host="127.0.0.1", mode="pass"):
        self.target = (target_host, target_port)
        self._mode = mode
        self._lock = threading.Lock()
        self._conns = set()
        self._closed = False
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self._thread = None

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, m):
        if m not in MODES:
            raise ValueError(f"unknown fault mode {m!r}; one of {MODES}")
        with self._lock:
            self._mode = m
            conns = list(self._conns)
        for s in conns:
            self._drop(s)

    def start(self):
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def close(self):
        self._closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            self._drop(s)

    # ---- plumbing ------------------------------------------------------

    def _track(self, s):
        with self._lock:
            self._conns.add(s)

    def _drop(self, s):
        with self._lock:
            self._conns.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            mode = self._mode
            if mode == "refuse":
                _close_hard(client)
                continue
            self._track(client)
            handler = {"pass": self._pass, "http500": self._http500,
                       "stall": self._stall, "truncate": self._truncate}[mode]
            threading.Thread(target=self._guard, args=(handler, client), daemon=True).start()

    def _guard(self, handler, client):
        upstream = None
        try:
            upstream = handler(client)
        except OSError:
            pass
        finally:
            self._drop(client)
            if upstream:
                self._drop(upstream)

    def _connect(self):
        up = socket.create_connection(self.target, timeout=10)
        up.settimeout(None)
        self._track(up)
        return up

    # ---- modes ---------------------------------------------------------

    def _pass(self, client):
        up = self._connect()

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(BUF)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pump, args=(up, client), daemon=True)
        t.start()
        pump(client, up)
        t.join()
        return up

    def _http500(self, client):
        buf = b""
        while True:
            got = _read_headers(client, buf)
            if not got:
                return None
            head, buf = got
            n = _content_length(head) or 0
            while len(buf) < n:  # swallow the request body
                chunk = client.recv(BUF)
                if not chunk:
                    return None
                buf += chunk
            buf = buf[n:]
            client.sendall(HTTP500)

    def _stall(self, client):
        # Read and discard forever: the peer sees a live connection that
        # never answers.
        while client.recv(BUF):
            pass
        return None

    def _truncate(self, client):
        up = self._connect()
        got = _read_headers(client)
        if not got:
            return up
        head, body = got
        n = _content_length(head) or 0
        while len(body) < n:
            chunk = client.recv(BUF)
            if not chunk:
                return up
            body += chunk
        up.sendall(head + body[:n])
        got = _read_headers(up)
        if not got:
            return up
        rhead, rbody = got
        total = _content_length(rhead)
        half = (total // 2) if total else 0
        while len(rbody) < half:
            chunk = up.recv(BUF)
            if not chunk:
                break
            rbody += chunk
        # Headers and half of the body, then a hard close mid-reply.
        client.sendall(rhead + rbody[:half])
        _close_hard(client)
        return up

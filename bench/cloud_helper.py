#!/usr/bin/env python3
"""cloud_helper: helpers of bench/cloud-bench around the test suite's Apache
WebDAV server (tests/integration/webdav_server.py).

  cloud_helper.py serve INFO_JSON
        start Apache (mod_dav_fs) with an access log that records, for every
        request, the bytes received and sent on the wire (mod_logio %I/%O);
        create the collections /peercling and /rclone; write
        {"port", "dir", "data", "log", "user", "password", "pid"} to
        INFO_JSON; serve until SIGTERM/SIGINT, then stop Apache and remove
        its directory.
  cloud_helper.py logbytes LOG OFFSET PREFIX
        sum over the access-log lines after byte OFFSET whose path starts
        with PREFIX: JSON {"put_requests", "put_bytes_in" (%I of PUTs:
        headers + body received), "put_body_bytes" (Content-Length of PUTs),
        "requests", "bytes_in", "bytes_out", "by_method"}.
  cloud_helper.py tree DIR
        JSON {"files", "bytes"} of a directory tree (the server's data).
  cloud_helper.py waitrclone RC_URL TIMEOUT [DATA_DIR NFILES BIGSIZE] [LOG OFFSET PATH]
        poll until rclone's upload queue is empty (rc vfs/stats:
        uploadsInProgress + uploadsQueued == 0) and, when given, the server
        holds DATA_DIR/small/ (DATA_DIR "-": no check) with NFILES files of 4096 bytes and
        DATA_DIR/big.bin of BIGSIZE bytes, and/or the access log shows, after
        byte OFFSET, a successful PUT of PATH; exit 1 after TIMEOUT s.
  cloud_helper.py mkfiles DIR N SIZE
        create DIR/f00000 ... of SIZE bytes each, distinct random contents
        (so that no block store can deduplicate them), from one process.
"""
import json
import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

# method, status, bytes received and sent (headers included), the request's
# Content-Length, its end time (ms since the epoch), its duration (µs), path
LOGFORMAT = '%m %>s %I %O "%{Content-Length}i" %{msec}t %D %U'


def serve(info_path):
    from webdav_server import WebDAVServer

    class LoggedServer(WebDAVServer):
        def _config(self):
            conf = super()._config()
            return conf + (
                f'LogFormat "{LOGFORMAT.replace(chr(34), chr(92) + chr(34))}" benchio\n'
                f'CustomLog "{self.dir}/access.log" benchio\n'
                # Bigger request bodies and more workers than the test
                # defaults would not change what is measured; keep them.
                "LimitRequestBody 0\n"
                "Timeout 300\n")

    s = LoggedServer(user="bench", password="bench-secret-pw")
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)
    try:
        s.start()
        for col in ("peercling/", "rclone/"):
            code, body = s.request("MKCOL", col)
            if code not in (201, 405):
                raise RuntimeError(f"MKCOL {col}: HTTP {code} {body[:200]!r}")
        tmp = info_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"port": s.port, "dir": str(s.dir), "data": str(s.data),
                       "log": str(s.dir / "access.log"), "user": s.user,
                       "password": s.password, "pid": os.getpid(),
                       "httpd_pid": s.proc.pid}, f)
        os.rename(tmp, info_path)
        while not stopping:
            signal.pause()
    except Exception as e:  # noqa: BLE001 - report and leave
        print(f"cloud_helper: {e}", file=sys.stderr)
        return 1
    finally:
        s.close()
    return 0


def logbytes(log, offset, prefix):
    res = {"put_requests": 0, "put_bytes_in": 0, "put_body_bytes": 0,
           "requests": 0, "bytes_in": 0, "bytes_out": 0, "by_method": {}}
    with open(log, "rb") as f:
        f.seek(int(offset))
        for raw in f:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                head, rest = line.split(' "', 1)
                clen, tail = rest.split('" ', 1)
                path = tail.split()[-1]
                method, status, bin_, bout = head.split()
            except ValueError:
                continue
            if not path.startswith(prefix):
                continue
            bin_, bout = int(bin_), int(bout)
            res["requests"] += 1
            res["bytes_in"] += bin_
            res["bytes_out"] += bout
            m = res["by_method"].setdefault(method, {"n": 0, "in": 0, "out": 0})
            m["n"] += 1
            m["in"] += bin_
            m["out"] += bout
            if method == "PUT":
                res["put_requests"] += 1
                res["put_bytes_in"] += bin_
                if clen.isdigit():
                    res["put_body_bytes"] += int(clen)
    print(json.dumps(res))


def tree(d):
    files = size = 0
    for root, _, names in os.walk(d):
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            files += 1
            size += st.st_size
    print(json.dumps({"files": files, "bytes": size}))


def rc_idle(url):
    import urllib.request
    req = urllib.request.Request(url.rstrip("/") + "/vfs/stats", data=b"{}",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        dc = json.load(r)["diskCache"]
    return dc["uploadsInProgress"] + dc["uploadsQueued"] == 0, dc


def server_has(data, nfiles, bigsize):
    try:
        if os.stat(os.path.join(data, "big.bin")).st_size != bigsize:
            return False
        n = 0
        with os.scandir(os.path.join(data, "small")) as it:
            for e in it:
                if e.name.startswith("f") and e.is_file() and e.stat().st_size == 4096:
                    n += 1
        return n == nfiles
    except OSError:
        return False


def log_has_put(log, offset, path):
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            for raw in f:
                w = raw.decode(errors="replace").split()
                if len(w) >= 2 and w[0] == "PUT" and w[1] in ("201", "204") \
                        and w[-1] == path:
                    return True
    except OSError:
        pass
    return False


def waitrclone(args):
    import time
    url, timeout = args[0], float(args[1])
    rest = args[2:]
    tree_args = log_args = None
    if len(rest) in (3, 6):
        if rest[0] != "-":
            tree_args = (rest[0], int(rest[1]), int(rest[2]))
        rest = rest[3:]
    if len(rest) == 3:
        log_args = (rest[0], int(rest[1]), rest[2])
    deadline = time.monotonic() + timeout
    dc = None
    while time.monotonic() < deadline:
        try:
            idle, dc = rc_idle(url)
        except OSError:
            idle = False
        if idle and (not tree_args or server_has(*tree_args)) \
                and (not log_args or log_has_put(*log_args)):
            print(json.dumps(dc))
            return 0
        time.sleep(0.2)
    print(f"cloud_helper: rclone upload not finished after {timeout} s: {dc}",
          file=sys.stderr)
    return 1


def mkfiles(d, n, size):
    os.makedirs(d, exist_ok=True)
    for i in range(int(n)):
        with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
            f.write(os.urandom(int(size)))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "serve" and len(sys.argv) == 3:
        sys.exit(serve(sys.argv[2]))
    if cmd == "logbytes" and len(sys.argv) == 5:
        logbytes(*sys.argv[2:])
        sys.exit(0)
    if cmd == "tree" and len(sys.argv) == 3:
        tree(sys.argv[2])
        sys.exit(0)
    if cmd == "waitrclone" and len(sys.argv) in (4, 7, 10):
        sys.exit(waitrclone(sys.argv[2:]))
    if cmd == "mkfiles" and len(sys.argv) == 5:
        mkfiles(*sys.argv[2:])
        sys.exit(0)
    print(__doc__, file=sys.stderr)
    sys.exit(2)

#!/usr/bin/env python3
"""cloud_server: helpers of bench/cloud-bench around the test suite's Apache
WebDAV server (tests/integration/webdav_server.py).

  cloud_server.py serve INFO_JSON
        start Apache (mod_dav_fs) with an access log that records, for every
        request, the bytes received and sent on the wire (mod_logio %I/%O);
        create the collections /peercling and /rclone; write
        {"port", "dir", "data", "log", "user", "password", "pid"} to
        INFO_JSON; serve until SIGTERM/SIGINT, then stop Apache and remove
        its directory.
  cloud_server.py logbytes LOG OFFSET PREFIX
        sum over the access-log lines after byte OFFSET whose path starts
        with PREFIX: JSON {"put_requests", "put_bytes_in" (%I of PUTs:
        headers + body received), "put_body_bytes" (Content-Length of PUTs),
        "requests", "bytes_in", "bytes_out", "by_method"}.
  cloud_server.py tree DIR
        JSON {"files", "bytes"} of a directory tree (the server's data).
"""
import json
import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

LOGFORMAT = '%m %>s %I %O "%{Content-Length}i" %U'


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
        print(f"cloud_server: {e}", file=sys.stderr)
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
                clen, path = rest.split('" ', 1)
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
    print(__doc__, file=sys.stderr)
    sys.exit(2)

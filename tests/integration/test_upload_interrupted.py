"""An upload cut off halfway: the WebDAV server stopped while the blocks of a
big file are going up (in packs of a few MiB each), and a proxy that resets
connections in the middle of pack PUTs.  Whatever the fault: the sync fails with a message and the
daemon lives on; every file still reads back byte for byte; the blocks not
uploaded stay queued; the cloud never holds a head of this device whose
blocks are missing, so a device that clones meanwhile sees a consistent
volume; once the cloud answers again one sync finishes the upload and a new
device reads every byte (every block it fetches is authenticated and checked
against its id, so a block cut short could not be read as good)."""
import hashlib
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import helpers
from faultproxy import FaultProxy, _close_hard, _content_length, _read_headers
from helpers import BIN, MiB, check, wait_for
from test_sync import Device
from webdav_server import webdav  # noqa: F401  (module-scoped fixture)

BIG = 64 * MiB   # ~900 blocks: the upload takes long enough to stop it midway


# ---- helpers -----------------------------------------------------------------

def dav_device(tmp_path, webdav, name):
    d = Device(tmp_path / name, name)
    netrc = Path(d.pc.env["HOME"]) / ".netrc"
    netrc.write_text("machine 127.0.0.1 login %s password %s\n" % (webdav.user, webdav.password))
    netrc.chmod(0o600)
    return d


def writer(tmp_path, webdav, path, devices, port=None, config=""):
    """Device a on webdav://.../path (through port when given), mounted, with
    the periodic sync off: every sync of the test is an explicit one; config:
    more lines for its config.  Added to devices before it mounts, for
    finish()."""
    a = dav_device(tmp_path, webdav, "a")
    devices.append(a)
    check(a.pc("init", "vol", "--cloud", webdav.url(path, port=port)))
    cfg = a.vol.dir / "config"
    cfg.write_text(cfg.read_text() + "[sync]\n\tinterval = 0\n" + config)
    key = check(a.pc("key", "vol")).stdout.strip()
    a.mount()
    return a, key


def put(path, data):
    """Write, fsync (blocks cut and stored), close."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_tree(mp, big):
    """A big random file and a few small ones; returns {relpath: sha256}."""
    contents = {
        "big.bin": os.urandom(big),
        "notes.txt": b"small text file\n" * 10,
        "empty": b"",
        "dir/sub/small.bin": os.urandom(5 * 1024),
        "dir/medium.bin": os.urandom(300 * 1024),
    }
    for rel, data in contents.items():
        put(mp / rel, data)
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in contents.items()}


def assert_tree(mp, digests):
    for rel, want in digests.items():
        got = helpers.sha256_file(mp / rel)
        assert got == want, "%s: contents differ from what was written" % (mp / rel)


def _files(top):
    n = 0
    try:
        entries = list(os.scandir(top))
    except FileNotFoundError:
        return 0
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir():
            n += _files(e.path)
        else:
            n += 1
    return n


def cloud_packs(webdav, path):
    """Packs the server holds for the volume at path.  mod_dav_fs writes a
    PUT into a hidden temporary file and renames it at the end, so these are
    completed PUTs only."""
    return _files(webdav.data / path / "packs")


def cloud_indexes(webdav, path):
    return _files(webdav.data / path / "index")


def cloud_has_head(webdav, path, device_id):
    return (webdav.data / path / "heads" / device_id).exists()


def stop_frozen_server(webdav):
    """Stop an httpd whose process group is SIGSTOPped: the SIGTERM waits
    for the SIGCONT, then the usual stop (which also waits for the port)."""
    if webdav.proc and webdav.proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGCONT):
            try:
                os.killpg(webdav.proc.pid, sig)
            except ProcessLookupError:
                pass
    webdav.stop()


def finish(devices):
    """Unmount every device; fail on leftovers or sanitizer reports."""
    problems = []
    for d in devices:
        problems += d.mounts.cleanup()
    for d in devices:
        problems += d.pc.sanitizer_reports()
    assert not problems, "\n".join(problems)


class CutPutProxy(FaultProxy):
    """The fault proxy in "pass" mode, plus one more fault: once cut_after(n)
    is called, the first n block PUTs go through and every later one is cut
    off after half of its body: the client's connection is reset mid-upload
    and the server's is closed mid-body."""

    def __init__(self, target_port):
        super().__init__(target_port)
        self.let_through = None   # None: forward everything
        self.cut = 0

    def cut_after(self, n):
        self.let_through = n
        self.mode = "pass"   # drops the open connections: no PUT slips by

    def stop_cutting(self):
        self.let_through = None
        self.mode = "pass"   # drops the open connections

    def _pass(self, client):
        if self.let_through is None:
            return super()._pass(client)
        up = self._connect()

        def pump_back():
            try:
                while True:
                    data = up.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
            except OSError:
                pass

        t = threading.Thread(target=pump_back, daemon=True)
        t.start()
        buf = b""
        while True:
            got = _read_headers(client, buf)
            if not got:
                break
            head, buf = got
            n = _content_length(head) or 0
            block_put = head.startswith(b"PUT ") and b"/packs/" in head.split(b"\r\n", 1)[0]
            cut = False
            if block_put and self.let_through is not None:
                with self._lock:
                    if self.let_through > 0:
                        self.let_through -= 1
                    else:
                        cut = True
                        self.cut += 1
            limit = n // 2 if cut else n
            up.sendall(head)
            sent = 0
            while sent < limit:
                if not buf:
                    buf = client.recv(65536)
                    if not buf:
                        return up
                k = min(len(buf), limit - sent)
                up.sendall(buf[:k])
                buf = buf[k:]
                sent += k
            if cut:
                _close_hard(client)
                # pump_back is blocked in up.recv(): a close alone would
                # leave the connection open until it returns.
                try:
                    up.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return up
        return up   # the caller closes both: pump_back ends


# ---- the tests -------------------------------------------------------------------

def test_server_stopped_mid_upload_loses_nothing_and_the_upload_resumes(tmp_path, webdav):
    path = "vol-stop-mid-upload"
    server = "127.0.0.1:%d/" % webdav.port
    devices = []
    try:
        # 4 MB/s a connection: a 4 MiB pack takes a second, so however slow
        # the status calls below (ASan, a loaded machine), the server is
        # frozen with most of the 16 packs still to go.
        a, key = writer(tmp_path, webdav, path, devices, config="[cloud]\n\tmaxUpload = 4m\n")
        digests = write_tree(a.mp, BIG)
        st = a.vol.status()
        total = st["cache"]["dirty_blocks"]
        assert total > 500, st["cache"]
        device_a = st["device_id"]
        pid = a.vol.daemon_pid()
        out_f = open(tmp_path / "sync.out", "w+")
        err_f = open(tmp_path / "sync.err", "w+")
        sync = subprocess.Popen([BIN, "sync", str(a.mp)], env=a.pc.env, stdin=subprocess.DEVNULL,
                                stdout=out_f, stderr=err_f)
        try:
            # The upload is under way once a pack and its index have arrived
            # and the daemon counted them: freeze the server at once
            # (SIGSTOP: nothing more completes), then stop it.  64 MiB go up
            # in about 16 packs.
            def counted():
                up = a.vol.status()["sync"]["uploading"]
                return up and up["done"] >= 1
            wait_for(lambda: cloud_indexes(webdav, path) >= 1 or sync.poll() is not None, 60,
                     interval=0.002)
            wait_for(lambda: counted() or sync.poll() is not None, 60, interval=0.002)
            os.killpg(webdav.proc.pid, signal.SIGSTOP)
            at_stop = cloud_packs(webdav, path)
            assert sync.poll() is None and 1 <= at_stop < 12, (
                "the upload was not caught midway: sync exit %s, %d packs in the cloud"
                % (sync.poll(), at_stop))
            # status answers while the sync waits on the frozen server, and
            # says how far the upload got.
            sy = a.vol.status()["sync"]
            assert sy["syncing"] is True, sy
            up = sy["uploading"]
            assert up["total"] == total and 1 <= up["done"] < total, (up, total)
            text = check(a.pc("status", "vol")).stdout
            # (the frozen server completes nothing: the count stands still)
            assert "syncing:    now; %d of %d blocks uploaded" % (up["done"], total) in text, text
            stop_frozen_server(webdav)

            # The sync fails, with a message, without a crash.
            try:
                rc = sync.wait(90)
            except subprocess.TimeoutExpired:
                sync.kill()
                raise AssertionError("peercling sync still running 90 s after the server stopped")
            out_f.seek(0)
            err_f.seek(0)
            out, err = out_f.read(), err_f.read()
            assert rc == 1, "sync exited %d (a signal if negative)\nstdout: %s\nstderr: %s" % (
                rc, out, err)
            # The message names what failed: a request to the cloud.
            assert "cannot sync" in err and server in err, err
            assert helpers.pid_alive(pid) and a.vol.daemon_pid() == pid, "the daemon died"

            # Nothing lost, the rest queued, no head published over missing blocks.
            assert_tree(a.mp, digests)
            st = a.vol.status()
            assert st["sync"]["reachable"] is False, st["sync"]
            assert st["sync"]["syncing"] is False and st["sync"]["uploading"] is None
            assert st["sync"]["unreachable_since"], st["sync"]
            assert server in (st["sync"]["last_error"] or ""), st["sync"]
            assert st["commits"] >= 1   # committed locally before the upload
            dirty = st["cache"]["dirty_blocks"]
            assert 0 < dirty < total, (dirty, total, at_stop)
            assert not cloud_has_head(webdav, path, device_a)

            # Offline, the mount keeps working and queues more.
            offline = os.urandom(200 * 1024)
            put(a.mp / "dir" / "offline.bin", offline)
            digests["dir/offline.bin"] = hashlib.sha256(offline).hexdigest()
            p = a.pc("sync", a.mp)
            assert p.returncode == 1 and server in p.stderr, (p.returncode, p.stderr)
            assert a.vol.status()["cache"]["dirty_blocks"] > dirty
        finally:
            if sync.poll() is None:
                sync.kill()
                sync.wait(10)
            out_f.close()
            err_f.close()
            stop_frozen_server(webdav)
            webdav.start()

        # Back up, before a retries: a device that clones now sees no head of
        # a, so a consistent (empty) volume, never a half-uploaded one.
        b = dav_device(tmp_path, webdav, "b")
        devices.append(b)
        check(b.pc("clone", webdav.url(path), "vol", "--key", key))
        b.mount()
        assert os.listdir(b.mp) == []

        # One sync of a finishes the upload.
        out = a.sync()
        assert "synced" in out, out
        st = a.vol.status()
        assert st["cache"]["dirty_blocks"] == 0, st["cache"]
        assert st["sync"]["reachable"] is True and st["sync"]["last_error"] is None, st["sync"]
        assert cloud_has_head(webdav, path, device_a)
        assert cloud_indexes(webdav, path) >= cloud_packs(webdav, path) - at_stop >= 4

        # b gets everything, fetched from the cloud and checked block by block.
        b.sync()
        assert_tree(b.mp, digests)
        assert sorted(os.listdir(b.mp)) == sorted(os.listdir(a.mp))
        a.sync()   # takes b's merge: both on one commit
        assert a.vol.status()["head"] == b.vol.status()["head"]
        assert_tree(a.mp, digests)
        assert a.vol.daemon_pid() == pid   # the same daemon all along
    finally:
        finish(devices)


def test_connections_reset_in_the_middle_of_block_puts_leave_no_partial_block(tmp_path, webdav):
    proxy = CutPutProxy(webdav.port).start()
    path = "vol-cut-puts"
    devices = []
    try:
        a, key = writer(tmp_path, webdav, path, devices, port=proxy.port)
        digests = write_tree(a.mp, 16 * MiB)
        total = a.vol.status()["cache"]["dirty_blocks"]
        device_a = a.vol.status()["device_id"]
        pid = a.vol.daemon_pid()

        proxy.cut_after(1)   # 1 pack PUT gets through, then every one is cut
        p = a.pc("sync", a.mp, timeout=90)
        assert p.returncode == 1, (p.stdout, p.stderr)
        # The message names what failed: a request to the cloud.
        assert "cannot sync" in p.stderr and "127.0.0.1:%d/" % proxy.port in p.stderr, p.stderr
        assert proxy.cut >= 1
        assert a.vol.daemon_pid() == pid, "the daemon died"
        assert_tree(a.mp, digests)
        st = a.vol.status()
        assert "127.0.0.1:%d/" % proxy.port in (st["sync"]["last_error"] or ""), st["sync"]
        dirty = st["cache"]["dirty_blocks"]
        assert 0 < dirty < total, (dirty, total)
        # The server kept exactly the pack whose PUT completed, with its
        # index, none of the cut ones, and no head of a.
        assert cloud_packs(webdav, path) == 1
        assert cloud_indexes(webdav, path) == 1
        assert not cloud_has_head(webdav, path, device_a)

        proxy.stop_cutting()
        a.sync()
        st = a.vol.status()
        assert st["cache"]["dirty_blocks"] == 0, st["cache"]
        assert st["sync"]["last_error"] is None, st["sync"]
        assert cloud_packs(webdav, path) == cloud_indexes(webdav, path) >= 2

        b = dav_device(tmp_path, webdav, "b")   # straight to the server
        devices.append(b)
        check(b.pc("clone", webdav.url(path), "vol", "--key", key))
        b.mount()
        assert_tree(b.mp, digests)
        assert a.vol.status()["head"] == b.vol.status()["head"]
        assert a.vol.daemon_pid() == pid
    finally:
        try:
            finish(devices)
        finally:
            proxy.close()

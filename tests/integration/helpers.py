"""helpers: what the integration tests share besides fixtures (conftest.py).

Running commands (always with a timeout, output through temporary files so a
daemon that keeps an inherited pipe open cannot make us wait), knowing whether
a path is a mount point without touching it (a dead FUSE mount answers every
stat with ENOTCONN), finding the daemon that holds a volume, and comparing
file contents.  Plain standard library only.
"""
import errno
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BIN = os.environ.get("PEERCLING_BIN") or str(HERE.parent.parent / "_build" / "dev" / "peercling")
TIMEOUT = 30            # seconds, every subprocess call
DAEMON_EXIT_WAIT = 10   # seconds the daemon may take to exit after an unmount
# A slower build (ASan: 2-3x) waits that much longer before it calls a
# command or a condition hung; every wait below is scaled by it.
TIME_SCALE = float(os.environ.get("PEERCLING_TIME_SCALE", "1"))
MiB = 1024 * 1024


def run(argv, *, env=None, cwd=None, timeout=TIMEOUT, input=None):
    """Run argv; return a CompletedProcess with text stdout/stderr.

    A command that outlives `timeout` is killed and the test fails: a hung
    daemon must fail a test, never hang CI."""
    argv = [str(a) for a in argv]
    timeout *= TIME_SCALE
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            p = subprocess.run(argv, env=env, cwd=cwd, timeout=timeout, stdout=out, stderr=err,
                               input=input,
                               stdin=subprocess.DEVNULL if input is None else None)
        except subprocess.TimeoutExpired:
            err.seek(0)
            pytest.fail("%r did not finish within %d s; stderr: %s"
                        % (argv, timeout, err.read().decode(errors="replace")[-2000:]))
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, p.returncode,
                                           out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def check(p):
    """Assert a CompletedProcess exited 0, showing its output if not."""
    assert p.returncode == 0, "%s exited %d\nstdout: %s\nstderr: %s" % (
        " ".join(p.args), p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p


def _unescape_mount_path(s):
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 4 <= len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _canonical(path):
    # Resolve the parent only: the mount point itself may be a dead mount.
    path = os.path.abspath(str(path))
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def mount_entry(path):
    """The last /proc/self/mountinfo entry for path as a dict, or None."""
    want = _canonical(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if _unescape_mount_path(fields[4]) == want:
                sep = fields.index("-")
                found = {"dev": fields[2], "fstype": fields[sep + 1], "source": fields[sep + 2]}
    return found


def is_mounted(path):
    return mount_entry(path) is not None


def fuse_abort(path):
    """Abort the FUSE connection mounted at path (makes hung calls fail)."""
    e = mount_entry(path)
    if not e or not e["fstype"].startswith("fuse"):
        return
    minor = e["dev"].split(":")[1]
    try:
        with open("/sys/fs/fuse/connections/%s/abort" % minor, "w") as f:
            f.write("1")
    except OSError:
        pass


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until it is true or timeout (scaled) passes; return its
    last value."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def lazy_unmount(path):
    if is_mounted(path):
        run(["fusermount3", "-u", "-z", path])
    if is_mounted(path):
        run(["umount", "-l", path])


class Volume:
    """One volume of one test: its name, state directory and daemon."""

    def __init__(self, pc, name):
        self.pc = pc
        self.name = name
        self.dir = Path(pc.home) / name

    @property
    def lock_path(self):
        return self.dir / "lock"

    @property
    def repo(self):
        return self.dir / "repo.git"

    def lock_held(self):
        """True if some process holds the volume's lock (a live daemon)."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also releases our lock if we got it
        return False

    def daemon_pids(self):
        """Pids of the live processes that hold the volume lock.

        The lock file names the holder; if that pid is gone while the lock is
        still held, look for whoever has the lock file open."""
        if not self.lock_held():
            return []
        try:
            pid = int(self.lock_path.read_text().split()[0])
            if pid_alive(pid):
                return [pid]
        except (OSError, ValueError, IndexError):
            pass
        want = str(self.lock_path.resolve())
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                for fd in os.listdir("/proc/%s/fd" % d):
                    if os.readlink("/proc/%s/fd/%s" % (d, fd)) == want:
                        pids.append(int(d))
                        break
            except OSError:
                continue
        return [p for p in pids if pid_alive(p)]

    def daemon_pid(self):
        pids = self.daemon_pids()
        assert pids, "no live daemon holds the lock of volume %s" % self.name
        return pids[0]

    def wait_daemon_gone(self, timeout=DAEMON_EXIT_WAIT):
        return wait_for(lambda: not self.lock_held(), timeout)

    def kill_daemon(self, sig=signal.SIGKILL):
        for pid in self.daemon_pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def status(self):
        p = check(self.pc("status", self.name, "--json"))
        return json.loads(p.stdout)

    def git(self, *args):
        return check(run(["git", "--git-dir", self.repo] + list(args)))

    def block_files(self):
        """All block files of the cache: blocks/XX/<64 hex>."""
        out = []
        for sub in sorted((self.dir / "blocks").glob("*")):
            if sub.is_dir():
                out.extend(p for p in sorted(sub.iterdir())
                           if p.is_file() and len(p.name) == 64)
        return out

    def log_tail(self, n=60):
        try:
            return "\n".join((self.dir / "log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def sha256_file(path, piece=MiB):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(piece)
            if not b:
                return h.hexdigest()
            h.update(b)


def write_file(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def read_until_error(path, expected, piece=128 * 1024):
    """Reads path piece by piece, as a program does, checking every piece
    against `expected`; the read must end in an error before the end.
    Returns (bytes read before it, the OSError)."""
    got = 0
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                data = f.read(piece)
                assert data, "read all of %s without an error" % path
                assert data == expected[got:got + len(data)], "wrong bytes at %d" % got
                got += len(data)
    except OSError as e:
        return got, e


def assert_same(path, expected):
    """path holds exactly the bytes `expected` (short message on mismatch)."""
    got = read_file(path)
    if got == expected:
        return
    first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                 min(len(got), len(expected)))
    pytest.fail("%s: %d bytes, expected %d; first difference at offset %d"
                % (path, len(got), len(expected), first))


def raises_errno(errnos, fn, *args, **kwargs):
    """Call fn; assert it raised OSError with an errno in errnos."""
    if isinstance(errnos, int):
        errnos = (errnos,)
    try:
        fn(*args, **kwargs)
    except OSError as e:
        assert e.errno in errnos, "%s: errno %s (%s), expected %s" % (
            fn.__name__, e.errno, errno.errorcode.get(e.errno), [errno.errorcode[x] for x in errnos])
        return e
    pytest.fail("%s succeeded; expected %s" % (fn.__name__, [errno.errorcode[x] for x in errnos]))


RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_libc = None


def renameat2(old, new, flags):
    """rename(2) with flags (glibc's renameat2 through ctypes)."""
    import ctypes
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    r = _libc.renameat2(at_fdcwd, os.fsencode(str(old)), at_fdcwd, os.fsencode(str(new)),
                        ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(old))

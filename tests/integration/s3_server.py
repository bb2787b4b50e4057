"""s3_server: a real S3 service for the tests, Ceph's radosgw on a one-node
Ceph cluster, so that the S3 backend is tested against a real
implementation of the protocol (SigV4, ListObjectsV2, error XML) and not
against a mock that only agrees with our own reading of it.

Everything runs from Debian's packages (ceph-mon, ceph-osd, radosgw,
ceph-common; installed with apt-get when missing and we are root), in one
temporary directory, on 127.0.0.1 only, without systemd and without a mgr:

  one monitor   mon.a on a free port (an explicit v1: address)
  one OSD       osd.0, BlueStore on a sparse file in the temporary directory
  radosgw       client.rgw, beast frontend on a free port, path-style S3

Auth inside the cluster is off (cephx none); S3 requests are still signed
and checked by radosgw against a user made with radosgw-admin.

  S3Cluster().start()   starts it (retrying a start that failed: about one
                        start in five a daemon dies at once with "wrong
                        fsid"); on failure raises with the last lines of the
                        daemons' logs
  .env()                AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
                        AWS_SECRET_ACCESS_KEY for a client of it
  .create_bucket(name)  a signed PUT (curl --aws-sigv4)
  .stop_rgw() / .start_rgw()   take the S3 service down and back up
  .stop()               kills every daemon (process groups) and removes the
                        directory: nothing is ever left running

The pytest fixture `s3` is session-scoped: one cluster for all S3 tests.  A
test module uses it with `from s3_server import s3  # noqa: F401`.  Run as a
script (python3 s3_server.py) it starts a cluster, prints its environment
and waits for Ctrl-C: handy by hand.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

try:
    import pytest
except ImportError:  # used as a script
    pytest = None

PACKAGES = ["ceph-mon", "ceph-osd", "radosgw", "ceph-common"]
PROGRAMS = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool"]
REGION = "us-east-1"
ACCESS_KEY = "PEERCLINGTESTKEY0001"
SECRET_KEY = "peercling-test-secret-0123456789abcdefghij"
START_TRIES = 4
STEP_TIMEOUT = 60     # seconds, every admin command and every wait
BLOCK_SIZE = 4 << 30  # sparse BlueStore file


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_programs():
    return [p for p in PROGRAMS if shutil.which(p) is None]


def ensure_installed():
    """None when Ceph is there (installing it when we may), else a reason."""
    if not missing_programs():
        return None
    if os.geteuid() != 0:
        return "Ceph is not installed (%s) and we are not root to apt-get it" % \
            ", ".join(missing_programs())
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "install", "-y", "-q"] + PACKAGES,
                 ["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q"] + PACKAGES):
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=900)
        if p.returncode == 0 and argv[1] == "install":
            break
    if missing_programs():
        return "installing Ceph failed (apt-get install %s): %s" % (
            " ".join(PACKAGES), p.stdout[-2000:])
    return None


class StartError(Exception):
    pass


class S3Cluster:
    def __init__(self):
        self.dir = None
        self.procs = {}   # name -> Popen
        self.mon_port = self.rgw_port = None
        self.access_key, self.secret_key, self.region = ACCESS_KEY, SECRET_KEY, REGION
        self.start_seconds = None
        self.attempts = 0

    # ---- public -------------------------------------------------------
    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.rgw_port

    def env(self, base=None):
        e = dict(os.environ if base is None else base)
        for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
            e.pop(k, None)
        e.update(AWS_ENDPOINT_URL=self.endpoint, AWS_REGION=self.region,
                 AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        return e

    def start(self):
        t0 = time.monotonic()
        errors = []
        for attempt in range(1, START_TRIES + 1):
            try:
                self._start_once()
                self.start_seconds = time.monotonic() - t0
                return self
            except StartError as e:
                errors.append("attempt %d: %s" % (attempt, e))
                first = str(e).splitlines()[0] if str(e) else "?"
                print("s3_server: start attempt %d failed (%s), retrying" % (attempt, first),
                      file=sys.stderr, flush=True)
                self.stop()
            finally:
                self.attempts = attempt
        raise StartError("radosgw did not start after %d attempts\n\n%s" %
                         (START_TRIES, "\n\n".join(errors)))

    def stop(self):
        for name in ("rgw", "osd", "mon"):
            self._kill(name)
        if self.dir and os.environ.get("PEERCLING_KEEP_CEPH") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def stop_rgw(self):
        self._kill("rgw")

    def start_rgw(self):
        self._spawn("rgw", ["radosgw", "-f", "-c", self.conf, "-n", "client.rgw"])
        self._wait_http()

    def create_bucket(self, name):
        p = self.s3_curl("PUT", "/" + name)
        if p.returncode != 0 or "<Error>" in p.stdout:
            raise RuntimeError("creating bucket %s failed: %s %s" % (name, p.stdout, p.stderr))

    def s3_curl(self, method, path, data=None, key=None, secret=None):
        """A signed request with curl; stdout is the body then the status."""
        argv = ["curl", "-sS", "--max-time", "20", "--aws-sigv4", "aws:amz:%s:s3" % self.region,
                "-u", "%s:%s" % (key or self.access_key, secret or self.secret_key),
                "-X", method, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                "-w", "\n%{http_code}", self.endpoint + path]
        if data is not None:
            argv[1:1] = ["--data-binary", "@-"]
        return subprocess.run(argv, input=data, capture_output=True, text=True, timeout=30)

    def rss_kib(self):
        """Resident memory of the daemons, by name (KiB)."""
        out = {}
        for name, p in self.procs.items():
            try:
                for line in open("/proc/%d/status" % p.pid):
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1])
            except OSError:
                pass
        return out

    # ---- the steps ----------------------------------------------------
    def _start_once(self):
        reason = ensure_installed()
        if reason:
            raise StartError(reason)
        self.dir = Path(tempfile.mkdtemp(prefix="peercling-ceph-"))
        self.procs = {}
        self.mon_port, self.rgw_port = _free_port(), _free_port()
        self.fsid = str(uuid.uuid4())
        d = self.dir
        for sub in ("mon/ceph-a", "osd/ceph-0", "rgw", "run", "log"):
            (d / sub).mkdir(parents=True)
        self.conf = str(d / "ceph.conf")
        Path(self.conf).write_text(self._conf_text())
        # Monitor
        self._run(["monmaptool", "--create", "--fsid", self.fsid,
                   "--add", "a", "v1:127.0.0.1:%d" % self.mon_port, str(d / "monmap")])
        self._run(["ceph-authtool", "--create-keyring", str(d / "keyring"), "--gen-key",
                   "-n", "mon.", "--cap", "mon", "allow *"])
        self._run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", "a",
                   "--monmap", str(d / "monmap"), "--keyring", str(d / "keyring")])
        self._spawn("mon", ["ceph-mon", "-f", "-c", self.conf, "-i", "a"])
        self._wait(lambda: self._ceph(["mon", "stat"], check=False).returncode == 0,
                   "the monitor answering", ["mon"])
        # OSD
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph(["osd", "new", osd_uuid]).stdout.strip()
        if osd_id != "0":
            raise StartError("ceph osd new gave id %r, expected 0" % osd_id)
        self._run(["ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid],
                  timeout=120)
        # Placed in the CRUSH map here rather than by the OSD as it starts:
        # its own request at start-up sometimes goes out before it knows
        # the cluster's fsid and is refused ("wrong fsid"), killing it.
        self._ceph(["osd", "crush", "add", "osd.0", "1.0", "root=default"])
        self._spawn("osd", ["ceph-osd", "-f", "-c", self.conf, "-i", "0"])
        self._wait(self._osd_up, "osd.0 up", ["osd", "mon"])
        # The S3 user (this also creates radosgw's pools), then radosgw.
        self._run(["radosgw-admin", "-c", self.conf, "-n", "client.rgw", "user", "create",
                   "--uid", "test", "--display-name", "test",
                   "--access-key", self.access_key, "--secret", self.secret_key], timeout=120)
        self.start_rgw()

    def _conf_text(self):
        d = self.dir
        return f"""[global]
fsid = {self.fsid}
mon host = v1:127.0.0.1:{self.mon_port}
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = {d}/keyring
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
log to stderr = false
err to stderr = true
pid file =
paxos propose interval = 0.05
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
crash dir = {d}/run

[mon]
mon data = {d}/mon/ceph-$id
mon cluster log file = {d}/log/cluster.log

[osd]
osd data = {d}/osd/ceph-$id
osd objectstore = bluestore
bluestore block path = {d}/osd/ceph-$id/block.img
bluestore block create = true
bluestore block size = {BLOCK_SIZE}
bluestore cache autotune = false
bluestore cache size = 67108864
osd memory target = 939524096
osd crush update on start = false
osd class update on start = false
osd op num shards = 1
osd op num threads per shard = 2

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{self.rgw_port}
rgw data = {d}/rgw
rgw thread pool size = 32
rgw enable usage log = false
rgw init timeout = 60
"""

    def _osd_up(self):
        p = self._ceph(["osd", "stat", "-f", "json"], check=False)
        return p.returncode == 0 and '"num_up_osds":1' in p.stdout.replace(" ", "")

    def _wait_http(self):
        def answers():
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).read()
                return True
            except urllib.error.HTTPError:
                return True  # any HTTP answer (403 anonymous) means it serves
            except OSError:
                return False
        self._wait(answers, "radosgw answering HTTP on port %d" % self.rgw_port,
                   ["rgw", "osd", "mon"])

    # ---- plumbing -----------------------------------------------------
    def _ceph(self, args, check=True):
        return self._run(["ceph", "-c", self.conf, "--connect-timeout", "10"] + args, check=check)

    def _run(self, argv, check=True, timeout=STEP_TIMEOUT):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise StartError("%s timed out after %ds%s" % (" ".join(argv), timeout,
                                                            self._diagnostics()))
        if check and p.returncode != 0:
            raise StartError("%s exited %d:\n%s%s%s" % (" ".join(argv), p.returncode,
                                                         p.stdout[-1500:], p.stderr[-1500:],
                                                         self._diagnostics()))
        return p

    def _spawn(self, name, argv):
        out = open(self.dir / "log" / (name + ".out"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def _kill(self, name):
        p = self.procs.pop(name, None)
        if p is None:
            return
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # the group may still hold children that outlived the leader
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _wait(self, cond, what, daemons, timeout=STEP_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in daemons:
                p = self.procs.get(n)
                if p is not None and p.poll() is not None:
                    raise StartError("%s exited (status %s) while waiting for %s%s" %
                                     (n, p.returncode, what, self._diagnostics()))
            if cond():
                return
            time.sleep(0.2)
        raise StartError("timed out after %ds waiting for %s%s" % (timeout, what,
                                                                    self._diagnostics()))

    def _diagnostics(self, lines=15):
        if not self.dir:
            return ""
        out = []
        logs = sorted((self.dir / "log").glob("*"))
        for f in logs:
            try:
                tail = f.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if tail:
                out.append("--- %s (last %d lines)\n%s" % (f.name, len(tail), "\n".join(tail)))
        return ("\n\n" + "\n".join(out)) if out else ""


_cluster = None


def _stop_at_exit():
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


atexit.register(_stop_at_exit)


def session_cluster():
    """The one cluster of this process, started on first use."""
    global _cluster
    if _cluster is None:
        c = S3Cluster()
        c.start()
        _cluster = c
    return _cluster


if pytest is not None:
    @pytest.fixture(scope="session")
    def s3():
        """A running radosgw (S3Cluster) shared by every S3 test; stopped at
        the end of the session.  The test is skipped when Ceph cannot be
        installed, and fails (with the daemons' logs) when it cannot start."""
        reason = ensure_installed()
        if reason:
            pytest.skip(reason)
        try:
            c = session_cluster()
        except StartError as e:
            pytest.fail("could not start the radosgw test cluster: %s" % e, pytrace=False)
        yield c
        _stop_at_exit()


def _smoke(c):
    """PUT, GET and list an object with plain curl: checks the service."""
    c.create_bucket("smoke")
    steps = [c.s3_curl("PUT", "/smoke/a/b", data="hello"), c.s3_curl("GET", "/smoke/a/b"),
             c.s3_curl("GET", "/smoke?list-type=2&prefix=a%2F"),
             c.s3_curl("GET", "/smoke", secret="wrong")]
    for p in steps:
        print(p.stdout.replace("\n", " ")[:300], p.stderr)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    c = session_cluster()
    print("radosgw up in %.1f s (%d attempts); RSS KiB %s" % (c.start_seconds, c.attempts, c.rss_kib()),
          flush=True)
    if "--smoke" in sys.argv:
        _smoke(c)
        sys.exit(0)
    print("dir %s" % c.dir)
    for k, v in c.env({}).items():
        print("export %s=%s" % (k, v))
    sys.stdout.flush()
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass

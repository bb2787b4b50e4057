"""webdav_server: a real WebDAV server for the tests, Apache httpd with
mod_dav and mod_dav_fs from Debian's apache2 package (installed with apt-get
when missing and we are root), so that the WebDAV backend is tested against
the server most NAS boxes and self-hosted setups run, with its real quirks
(409 on PUT into a missing collection, 403 on PROPFIND Depth: infinity).

Everything lives in one temporary directory with its own minimal httpd.conf:
nothing of the system's Apache configuration is read, and the server listens
on 127.0.0.1 only, on a free port.

  WebDAVServer().start()  starts httpd in the foreground as a child process
                          and waits until its port answers; on failure
                          raises with the end of its error log
  .url(path)              webdav://127.0.0.1:PORT/PATH
  .http_url(path)         the same over http://, for direct requests
  .user, .password        basic-auth credentials it accepts
  .env()                  PEERCLING_TEST_USER / PEERCLING_TEST_PASSWORD
  .stop() / .start()      take the server down and back up on the same port
  .close()                stops it and removes the directory

Apache refuses to serve requests as root, so when we are root its workers
run as www-data; they must be able to reach the data directory, the lock
database and the htpasswd file (read on every request), so those are made
accessible to www-data: a mktemp -d directory is 0700 and would make every
request a 403.

The pytest fixture `webdav` is module-scoped; a test module uses it with
`from webdav_server import webdav  # noqa: F401`.  Run as a script it
starts a server, prints its URL and waits for Ctrl-C.
"""
import base64
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

try:
    import pytest
except ImportError:  # used as a script
    pytest = None

MODULES_DIR = "/usr/lib/apache2/modules"
MODULES = [
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_user_module", "mod_authz_user.so"),
    ("authn_core_module", "mod_authn_core.so"),
    ("authn_file_module", "mod_authn_file.so"),
    ("auth_basic_module", "mod_auth_basic.so"),
    ("dav_module", "mod_dav.so"),
    ("dav_fs_module", "mod_dav_fs.so"),
]  # mod_log_config is built into Debian's apache2
START_TIMEOUT = 15  # seconds
STOP_TIMEOUT = 10


def find_apache():
    """Path of the apache2 binary; installs the package when root may."""
    for p in ("/usr/sbin/apache2", shutil.which("apache2") or ""):
        if p and os.access(p, os.X_OK) and shutil.which("htpasswd"):
            return p
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "apache2", "apache2-utils"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       timeout=600, check=False)
        # The package starts the system's own Apache on port 80: not ours,
        # and not wanted.
        subprocess.run(["service", "apache2", "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    p = "/usr/sbin/apache2"
    if os.access(p, os.X_OK) and shutil.which("htpasswd"):
        return p
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class WebDAVServer:
    def __init__(self, user="peer", password="cling-secret", location="/"):
        self.apache = find_apache()
        if not self.apache:
            raise RuntimeError("apache2 is not installed and cannot be installed "
                               "(apt-get install apache2 apache2-utils as root)")
        self.user, self.password = user, password
        self.location = location
        self.dir = Path(tempfile.mkdtemp(prefix="peercling-webdav-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc = None
        self._as_root = os.geteuid() == 0
        self._setup()

    # ---- configuration -------------------------------------------------

    def _setup(self):
        (self.data).mkdir()
        (self.dir / "lock").mkdir()
        subprocess.run(["htpasswd", "-bc", str(self.dir / "htpasswd"), self.user,
                        self.password], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self.conf = self.dir / "httpd.conf"
        self.conf.write_text(self._config())
        if self._as_root:
            self._give_to_www_data()

    def _give_to_www_data(self):
        """Workers run as www-data: let them in (see the module comment)."""
        www = pwd.getpwnam("www-data")
        # Every directory on the way must be searchable.
        p = self.dir
        while p != p.parent:
            mode = p.stat().st_mode
            if not mode & 0o001:
                os.chmod(p, mode | 0o011)
            p = p.parent
        for d in (self.data, self.dir / "lock"):
            os.chown(d, www.pw_uid, www.pw_gid)
        os.chmod(self.dir / "htpasswd", 0o644)

    def _config(self):
        loads = "\n".join(f"LoadModule {name} {MODULES_DIR}/{so}" for name, so in MODULES)
        who = "User www-data\nGroup www-data\n" if self._as_root else ""
        d = self.dir
        return f"""# peercling test WebDAV server: generated, not for production
ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile "{d}/httpd.pid"
ErrorLog "{d}/error.log"
LogLevel warn
# What tests count: method, status, body bytes sent, path.
LogFormat "%m %>s %B %U" requests
CustomLog "{d}/access.log" requests
{loads}
{who}
# Few workers: a test server, not a load test.
StartServers 1
ServerLimit 2
ThreadsPerChild 25
MaxRequestWorkers 50
KeepAlive On
KeepAliveTimeout 15
DocumentRoot "{self.data}"
DAVLockDB "{d}/lock/DAVLock"
<Directory />
    Require all denied
    AllowOverride None
</Directory>
<Location "{self.location}">
    Dav On
    AuthType Basic
    AuthName "peercling test"
    AuthBasicProvider file
    AuthUserFile "{d}/htpasswd"
    Require valid-user
</Location>
<Directory "{self.data}">
    Require all granted
</Directory>
"""

    # ---- life cycle ----------------------------------------------------

    def start(self):
        if self.proc and self.proc.poll() is None:
            return self
        deadline = time.monotonic() + START_TIMEOUT
        # A port just freed by stop() may briefly still be in use.
        while port_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.proc = subprocess.Popen(
            [self.apache, "-f", str(self.conf), "-DFOREGROUND"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "ab"), start_new_session=True)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if port_answers(self.port) and self._answers_http():
                return self
            time.sleep(0.1)
        log = self.log_tail()
        self.stop()
        raise RuntimeError(f"apache2 did not start on port {self.port}:\n{log}")

    def _answers_http(self):
        try:
            urllib.request.urlopen(self.http_url(""), timeout=2)
        except urllib.error.HTTPError:
            return True  # 401: alive and asking for credentials
        except OSError:
            return False
        return True

    def stop(self):
        """Stops httpd and every worker (its own process group)."""
        if not self.proc:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        self.proc = None
        # Workers leave with the parent, but give the port time to close.
        deadline = time.monotonic() + STOP_TIMEOUT
        while port_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=30):
        out = []
        for name in ("error.log", "stderr.log"):
            p = self.dir / name
            if p.exists():
                out += p.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(out)

    def requests_mark(self):
        """Where the access log ends now: pass it to requests_since()."""
        p = self.dir / "access.log"
        return p.stat().st_size if p.exists() else 0

    def requests_since(self, mark):
        """[(method, status, body bytes sent, path)] logged after mark.
        Apache writes a request's line just after it has answered it, so
        the client can be a little ahead: the log is read once it has not
        grown for 100 ms (2 s at most), and a line not ended is left out."""
        p = self.dir / "access.log"
        if not p.exists():
            return []
        size, deadline = -1, time.monotonic() + 2
        while p.stat().st_size != size and time.monotonic() < deadline:
            size = p.stat().st_size
            time.sleep(0.1)
        with open(p, "rb") as f:
            f.seek(mark)
            raw = f.read()
        lines = raw[:raw.rfind(b"\n") + 1].decode(errors="replace").splitlines()
        out = []
        for line in lines:
            parts = line.split(" ", 3)
            if len(parts) == 4:
                out.append((parts[0], int(parts[1]), 0 if parts[2] == "-" else int(parts[2]),
                            parts[3]))
        return out

    # ---- addresses -----------------------------------------------------

    def url(self, path, port=None):
        return f"webdav://127.0.0.1:{port or self.port}/{path.lstrip('/')}"

    def http_url(self, path, port=None):
        return f"http://127.0.0.1:{port or self.port}/{path.lstrip('/')}"

    def env(self):
        return {"PEERCLING_TEST_USER": self.user, "PEERCLING_TEST_PASSWORD": self.password}

    def request(self, method, path, body=None, headers=None):
        """A direct request with the right credentials: (status, body)."""
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        h = {"Authorization": "Basic " + auth, **(headers or {})}
        req = urllib.request.Request(self.http_url(path), data=body, method=method,
                                     headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


if pytest:
    @pytest.fixture(scope="module")
    def webdav():
        try:
            server = WebDAVServer()
        except RuntimeError as e:
            pytest.skip(str(e))
        try:
            server.start()
            yield server
        finally:
            server.close()


if __name__ == "__main__":
    s = WebDAVServer().start()
    print(f"{s.url('')}  user {s.user}  password {s.password}  (dir {s.dir})")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        s.close()
    sys.exit(0)

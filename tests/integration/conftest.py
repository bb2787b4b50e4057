"""Fixtures of the integration tests: real FUSE mounts of real volumes.

  peercling  run the binary ($PEERCLING_BIN) with PEERCLING_HOME set to this
             test's own directory; returns a CompletedProcess (text output)
  volume     a new volume "vol" (a helpers.Volume: name, dir, daemon, status)
  mounts     the mount manager: mount, umount, remount, crash; at teardown it
             leaves no mount and no daemon behind, whatever the test did
  mounted    the volume mounted on a fresh mountpoint; yields its Path
  remount    remount(mp): unmount (peercling umount) and mount again there

Every test gets its own state directory, volume and mountpoint under tmp_path.
Tests that mount are skipped (with the reason) only when FUSE is missing:
no /dev/fuse or no fusermount3.  A per-test watchdog kills the daemon and
aborts the FUSE connection of a test that runs far too long, so a hung
filesystem fails that test instead of hanging CI.
"""
import os
import shutil
import signal
import subprocess
import threading

import pytest

import helpers
from helpers import BIN, check, is_mounted, lazy_unmount, run, wait_for, Volume

TEST_DEADLINE = float(os.environ.get("PEERCLING_TEST_DEADLINE", 150 * helpers.TIME_SCALE))


def fuse_unavailable():
    if not os.path.exists("/dev/fuse"):
        return "FUSE is not available here: /dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "fuse: the test mounts a volume (needs /dev/fuse)")


def pytest_collection_modifyitems(config, items):
    reason = fuse_unavailable()
    for item in items:
        if "mounts" in item.fixturenames or item.get_closest_marker("fuse"):
            item.add_marker(pytest.mark.fuse)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class Peercling:
    """Runs the binary against this test's PEERCLING_HOME."""

    def __init__(self, tmp_path):
        self.home = tmp_path / "home"
        self.home.mkdir()
        userhome = tmp_path / "userhome"
        userhome.mkdir()
        self.env = dict(os.environ)
        self.env.pop("XDG_DATA_HOME", None)
        self.env.update({
            "PEERCLING_HOME": str(self.home),
            "HOME": str(userhome),          # vim, git, ... keep off the real HOME
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",
        })
        # A sanitizer build (tests/run-all's "san") reports into files here,
        # since the daemon's stderr is /dev/null; any report fails the test.
        self.sanitizer_log = tmp_path / "sanitizer"
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            opts = [o for o in self.env.get(var, "").split(":") if o and
                    not o.startswith("log_path=")]
            self.env[var] = ":".join(opts + ["log_path=%s" % self.sanitizer_log])

    def sanitizer_reports(self):
        out = []
        for f in sorted(self.sanitizer_log.parent.glob(self.sanitizer_log.name + ".*")):
            out.append("%s:\n%s" % (f.name, f.read_text(errors="replace")[-4000:]))
        return out

    def __call__(self, *args, cwd=None, timeout=helpers.TIMEOUT, input=None):
        return run([BIN] + [str(a) for a in args], env=self.env, cwd=cwd, timeout=timeout,
                   input=input)

    def ok(self, *args, **kw):
        return check(self(*args, **kw))

    def run(self, argv, **kw):
        """Run any command with this test's environment."""
        kw.setdefault("env", self.env)
        return run(argv, **kw)


class Mounts:
    """Every mount a test makes, so that teardown can undo all of them."""

    def __init__(self, pc):
        self.pc = pc
        self.known = {}        # mountpoint (str) -> Volume
        self.foreground = []   # Popen of `peercling mount -f`
        self.watchdog_fired = False
        self._timer = threading.Timer(TEST_DEADLINE, self._watchdog)
        self._timer.daemon = True
        self._timer.start()

    def _watchdog(self):
        self.watchdog_fired = True
        for mp, vol in list(self.known.items()):
            vol.kill_daemon()
            helpers.fuse_abort(mp)

    def mount(self, vol, mp, *extra, check_ok=True):
        """peercling mount; by default assert it worked and the mount is live."""
        mp = str(mp)
        self.known[mp] = vol
        p = self.pc("mount", vol.name, mp, *extra)
        if check_ok:
            check(p)
            assert is_mounted(mp), "peercling mount returned 0 before %s was mounted" % mp
        return p

    def mount_foreground(self, vol, mp, *extra):
        """peercling mount -f as a child process; returns the Popen."""
        mp = str(mp)
        self.known[mp] = vol
        p = subprocess.Popen([BIN, "mount", vol.name, mp, "-f"] + list(extra), env=self.pc.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.foreground.append(p)
        return p

    def umount(self, mp):
        """peercling umount; assert it worked and the daemon is gone."""
        mp = str(mp)
        vol = self.known[mp]
        check(self.pc("umount", mp))
        assert not is_mounted(mp), "%s still mounted after peercling umount" % mp
        assert vol.wait_daemon_gone(), "daemon of %s still alive %d s after umount" % (
            vol.name, helpers.DAEMON_EXIT_WAIT)

    def remount(self, mp):
        mp = str(mp)
        vol = self.known[mp]
        self.umount(mp)
        self.mount(vol, mp)

    def crash(self, mp):
        """kill -9 the daemon of mp; leave the dead mount in place."""
        vol = self.known[str(mp)]
        pid = vol.daemon_pid()
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not helpers.pid_alive(pid), 10), "pid %d survived SIGKILL" % pid
        assert vol.wait_daemon_gone(), "volume lock still held after the daemon was killed"
        return pid

    def cleanup(self):
        """Leave nothing behind: umount, then lazy unmount, then kill."""
        self._timer.cancel()
        problems = []
        for mp in reversed(list(self.known)):
            if is_mounted(mp):
                try:
                    p = self.pc("umount", mp)
                    if p.returncode != 0:
                        problems.append("peercling umount %s: exit %d: %s"
                                        % (mp, p.returncode, p.stderr.strip()))
                except BaseException as e:  # a timeout reported by pytest.fail
                    problems.append("peercling umount %s: %s" % (mp, e))
            if is_mounted(mp):
                lazy_unmount(mp)
        for vol in {id(v): v for v in self.known.values()}.values():
            if not vol.wait_daemon_gone():
                problems.append("daemon of %s did not exit after unmount; killed it" % vol.name)
                vol.kill_daemon()
                vol.wait_daemon_gone(5)
        for mp in self.known:
            if is_mounted(mp):
                lazy_unmount(mp)
        for p in self.foreground:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        return problems


@pytest.fixture
def peercling(tmp_path):
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        pytest.fail("PEERCLING_BIN=%s is not an executable file: build peercling first" % BIN)
    pc = Peercling(tmp_path)
    yield pc
    # after `mounts` has unmounted: every daemon has exited and reported
    reports = pc.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reports from peercling:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def volume(peercling):
    peercling.ok("init", "vol")
    return Volume(peercling, "vol")


@pytest.fixture
def mounts(peercling, request):
    m = Mounts(peercling)
    yield m
    problems = m.cleanup()
    rep = getattr(request.node, "rep_call", None)
    if m.watchdog_fired:
        print("watchdog: the test ran over %d s; its daemon was killed" % TEST_DEADLINE)
    if rep is not None and rep.failed:
        for vol in {id(v): v for v in m.known.values()}.values():
            print("---- last lines of %s/log ----\n%s" % (vol.dir, vol.log_tail()))
    for p in problems:
        print("teardown:", p)
    if problems and rep is not None and rep.passed:
        pytest.fail("the test passed, but unmounting at teardown went wrong:\n"
                    + "\n".join(problems), pytrace=False)


@pytest.fixture
def mountpoint(tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    return mp


@pytest.fixture
def mounted(mounts, volume, mountpoint):
    mounts.mount(volume, mountpoint)
    yield mountpoint


@pytest.fixture
def remount(mounts):
    return mounts.remount

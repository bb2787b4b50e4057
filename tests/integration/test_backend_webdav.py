"""test_backend_webdav: the WebDAV backend against a real Apache mod_dav
(webdav_server.py), through the backend interface only: the C program
tests/backend_driver.c does the work and prints TAP; these tests run it
directly and through a fault proxy (faultproxy.py) and check its verdicts.

What is proved: the whole backend contract holds on a real server (round
trips of 0 B to 1 MiB, -ENOENT, nested keys made with MKCOL, level-by-level
listing of 300 keys, head replacement, delete, 8 threads at once); a refused
or frozen server is reported as a transport error within about 20 s; a
failing server (500) as -EIO after the retries; a reply cut in the middle is
never taken for the object; service resumes as soon as the network does; a
wrong password is -EACCES with a message that says so; a missing base
collection is made by the check, or -ENXIO when its parent is missing too.

The driver is built outside this suite (see the report of the backend
work); its path comes from $PEERCLING_BACKEND_DRIVER, default
tests/backend_driver next to $PEERCLING_BIN, and every test is skipped, saying so, when it
is not there.
"""
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import helpers

from faultproxy import FaultProxy
from webdav_server import webdav  # noqa: F401  (the fixture)

DRIVER = os.environ.get("PEERCLING_BACKEND_DRIVER") or os.path.join(
    os.path.dirname(helpers.BIN), "tests", "backend_driver")
DOWN_LIMIT_S = 20  # the brief: a dead cloud is noticed within about 20 s
RUN_TIMEOUT = 180

pytestmark = pytest.mark.skipif(
    not os.access(DRIVER, os.X_OK),
    reason=f"backend driver {DRIVER} not built (set PEERCLING_BACKEND_DRIVER)")


def drive(url, env=None, timeout=RUN_TIMEOUT):
    """Runs the driver; returns (returncode, stdout, elapsed seconds)."""
    e = dict(os.environ, **(env or {}))
    t0 = time.monotonic()
    p = subprocess.run([DRIVER, url], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def assert_tap_ok(rc, out):
    lines = out.splitlines()
    bad = [line for line in lines if line.startswith("not ok") or line.startswith("Bail out")]
    plan = [line for line in lines if re.match(r"^1\.\.\d+$", line)]
    oks = [line for line in lines if line.startswith("ok ")]
    assert rc == 0 and not bad and plan and len(oks) == int(plan[0][3:]), out


def expect_down(url, env, errno_name=None, op="get", key=None):
    """Runs the driver in down mode; returns (seconds the failing operation
    took, as the driver measured it: not counting its start-up, slow under
    ASan; the driver's output)."""
    e = dict(env, DRIVER_EXPECT_DOWN="1", DRIVER_DOWN_OP=op)
    if errno_name:
        e["DRIVER_EXPECT_ERRNO"] = errno_name
    if key:
        e["DRIVER_KEY"] = key
    rc, out, el = drive(url, e)
    assert_tap_ok(rc, out)
    took = re.search(r"\) after (\d+) ms, allowed", out)
    return (int(took.group(1)) / 1000 if took else el), out


@pytest.fixture
def proxy(webdav):  # noqa: F811
    p = FaultProxy(webdav.port).start()
    yield p
    p.close()


def test_driver_passes_against_apache(webdav):  # noqa: F811
    rc, out, _ = drive(webdav.url("vol"), webdav.env())
    assert_tap_ok(rc, out)
    assert webdav.request("PROPFIND", "vol/", headers={"Depth": "0"})[0] == 207


def test_apache_refuses_depth_infinity(webdav):  # noqa: F811
    """Why listings go level by level: keep the fact checked."""
    webdav.request("MKCOL", "probe/")
    assert webdav.request("PROPFIND", "probe/", headers={"Depth": "infinity"})[0] == 403


def test_refused_connection_is_transport_error(webdav, proxy):  # noqa: F811
    proxy.mode = "refuse"
    el, out = expect_down(webdav.url("vol", port=proxy.port), webdav.env())
    assert el < DOWN_LIMIT_S, out


def test_stalled_server_is_timeout_within_20s(webdav, proxy):  # noqa: F811
    """Default timeouts (3 s connect, 15 s stall): a frozen server is
    noticed in one stall limit, not one per retry."""
    proxy.mode = "stall"
    el, out = expect_down(webdav.url("vol", port=proxy.port), webdav.env(), "ETIMEDOUT")
    assert el < DOWN_LIMIT_S, out
    assert el > 10, f"gave up before the stall limit: {out}"


def test_stalled_server_with_short_timeout(webdav, proxy):  # noqa: F811
    proxy.mode = "stall"
    env = dict(webdav.env(), DRIVER_TIMEOUT_MS="3000")
    el, out = expect_down(webdav.url("vol", port=proxy.port), env, "ETIMEDOUT", op="put")
    assert el < 8, out


def test_server_error_is_eio_after_retries(webdav, proxy):  # noqa: F811
    proxy.mode = "http500"
    el, out = expect_down(webdav.url("vol", port=proxy.port), webdav.env(), "EIO")
    assert "500" in out and "server error" in out, out
    # 3 retries with 200, 400, 800 ms backoffs (plus jitter).
    assert 1.2 < el < DOWN_LIMIT_S, out
    el, out = expect_down(webdav.url("vol", port=proxy.port), webdav.env(), "EIO", op="check")


def test_truncated_reply_is_never_accepted(webdav, proxy):  # noqa: F811
    body = bytes(range(256)) * 4096  # 1 MiB
    webdav.request("MKCOL", "vol/")
    webdav.request("MKCOL", "vol/trunc/")
    assert webdav.request("PUT", "vol/trunc/obj", body)[0] in (201, 204)
    proxy.mode = "truncate"
    el, out = expect_down(webdav.url("vol", port=proxy.port), webdav.env(), "EIO",
                          key="trunc/obj")
    assert "succeeded" not in out, out
    assert el < DOWN_LIMIT_S, out


def test_service_resumes_after_faults(webdav, proxy):  # noqa: F811
    url = webdav.url("vol", port=proxy.port)
    for mode in ("refuse", "http500", "truncate"):
        proxy.mode = mode
        expect_down(url, dict(webdav.env(), DRIVER_RETRIES="-1"))
        proxy.mode = "pass"
        rc, out, _ = drive(url, webdav.env())
        assert_tap_ok(rc, out)


def test_server_down_then_up(webdav):  # noqa: F811
    url = webdav.url("vol")
    webdav.stop()
    try:
        el, out = expect_down(url, webdav.env(), "ECONNREFUSED")
        assert el < DOWN_LIMIT_S, out
    finally:
        webdav.start()
    rc, out, _ = drive(url, webdav.env())
    assert_tap_ok(rc, out)


def test_wrong_password_is_eacces_with_message(webdav):  # noqa: F811
    env = dict(webdav.env(), PEERCLING_TEST_PASSWORD="not-the-password")
    _, out = expect_down(webdav.url("vol"), env, "EACCES", op="check")
    assert "credentials" in out and "401" in out, out
    assert "not-the-password" not in out, out
    _, out = expect_down(webdav.url("vol"), env, "EACCES", op="get")
    _, out = expect_down(webdav.url("vol"), dict(env, PEERCLING_TEST_USER="nobody"),
                         "EACCES", op="put")


def test_check_makes_missing_collection(webdav):  # noqa: F811
    """A new volume names a new folder: the check (the driver's first
    test) makes it, and everything else then works in it."""
    assert webdav.request("PROPFIND", "fresh/", headers={"Depth": "0"})[0] == 404
    rc, out, _ = drive(webdav.url("fresh"), webdav.env())
    assert_tap_ok(rc, out)
    assert webdav.request("PROPFIND", "fresh/", headers={"Depth": "0"})[0] == 207


def test_check_missing_parent_is_enxio(webdav):  # noqa: F811
    _, out = expect_down(webdav.url("no/such/parent"), webdav.env(), "ENXIO", op="check")
    assert "does not exist" in out, out
    assert webdav.request("PROPFIND", "no/", headers={"Depth": "0"})[0] == 404

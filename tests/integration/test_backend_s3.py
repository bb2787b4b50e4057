"""test_backend_s3: the S3 backend (sync/backend_s3.c) against a real S3
service, Ceph's radosgw (s3_server.py), through the generic backend test
program: `backend_driver URL` runs the same TAP suite against any backend,
so S3 is held to exactly what the file and WebDAV backends are held to.
This file adds what is S3's own: the messages for refused credentials and
a missing bucket, listings that span pages (continuation tokens), and a
service that goes away and comes back.

The driver is $PEERCLING_BACKEND_DRIVER (default: tests/backend_driver next to $PEERCLING_BIN);
without it the tests are skipped, saying so.  The cluster is one for the
whole session (the `s3` fixture) and takes about 5 to 15 seconds to start.
"""
import os
import re
import subprocess
import tempfile
import uuid

import pytest

import helpers

from s3_server import s3  # noqa: F401  (the session fixture)

DRIVER = os.environ.get("PEERCLING_BACKEND_DRIVER") or os.path.join(
    os.path.dirname(helpers.BIN), "tests", "backend_driver")
BUCKET = "peercling-test"
RUN_TIMEOUT = 180  # seconds, one run of the driver


@pytest.fixture(scope="module")
def driver():
    if not (os.path.isfile(DRIVER) and os.access(DRIVER, os.X_OK)):
        pytest.skip("the backend test program is not built: no executable %s "
                    "(build tests/backend_driver.c, or set PEERCLING_BACKEND_DRIVER)" % DRIVER)
    return DRIVER


@pytest.fixture(scope="module")
def bucket(s3):  # noqa: F811
    s3.create_bucket(BUCKET)
    return BUCKET


def run_driver(url, env, extra=None):
    """Runs the driver on url; returns (exit status, stdout, stderr)."""
    env = dict(env, **(extra or {}))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            p = subprocess.run([DRIVER, url], env=env, stdout=out, stderr=err,
                               stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("backend_driver %s ran over %d s" % (url, RUN_TIMEOUT))
        out.seek(0)
        err.seek(0)
        return (p.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))


def assert_suite_passes(url, env, extra=None):
    rc, out, err = run_driver(url, env, extra)
    text = "backend_driver %s exited %d\n--- stdout\n%s\n--- stderr\n%s" % (url, rc, out, err)
    oks = [l for l in out.splitlines() if re.match(r"ok \d+", l)]
    bad = [l for l in out.splitlines() if l.startswith("not ok") or l.startswith("Bail out")]
    plan = re.search(r"^1\.\.(\d+)", out, re.M)
    assert rc == 0, text
    assert not bad, text
    assert oks, "no TAP line at all\n" + text
    if plan:
        assert len(oks) == int(plan.group(1)), "plan and count of ok lines differ\n" + text
    return out


def assert_refused(url, env, extra, errno_name, words, ops=("check", "get", "put")):
    """Each op fails with exactly errno_name (the driver's DRIVER_EXPECT_DOWN
    mode checks that) and error_last() says why, with all of words."""
    for op in ops:
        x = dict(extra or {}, DRIVER_EXPECT_DOWN="1", DRIVER_DOWN_OP=op,
                 DRIVER_EXPECT_ERRNO=errno_name)
        rc, out, err = run_driver(url, env, x)
        text = "backend_driver %s (%s, expecting %s) exited %d\n--- stdout\n%s\n--- stderr\n%s" % (
            url, op, errno_name, rc, out, err)
        assert rc == 0 and "not ok" not in out and re.search(r"^ok ", out, re.M), text
        msg = "".join(l for l in out.splitlines() if l.startswith("# error:"))
        for w in words:
            assert w.lower() in msg.lower(), "no %r in the message\n%s" % (w, text)


def url_for(bucket, prefix=None):
    return "s3://%s/%s" % (bucket, prefix or "run-" + uuid.uuid4().hex[:12])


def test_suite_passes(driver, s3, bucket):  # noqa: F811
    assert_suite_passes(url_for(bucket), s3.env())


def test_suite_passes_without_prefix(driver, s3):  # noqa: F811
    """Keys straight at the root of a bucket of their own."""
    s3.create_bucket("peercling-noprefix")
    assert_suite_passes("s3://peercling-noprefix", s3.env())


def test_suite_passes_with_small_listing_pages(driver, s3, bucket):  # noqa: F811
    """37 keys a page: the 300-key listings of the suite go through
    continuation tokens (ending on a partial page)."""
    assert_suite_passes(url_for(bucket), s3.env(), {"PEERCLING_S3_PAGE_KEYS": "37"})


def test_suite_passes_with_region_from_default_region(driver, s3, bucket):  # noqa: F811
    env = s3.env()
    del env["AWS_REGION"]
    env["AWS_DEFAULT_REGION"] = s3.region
    assert_suite_passes(url_for(bucket), env)


def test_wrong_secret_is_eacces(driver, s3, bucket):  # noqa: F811
    assert_refused(url_for(bucket), s3.env(), {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
                   "EACCES", ["credentials", "AWS_SECRET_ACCESS_KEY"])


def test_unknown_key_id_is_eacces(driver, s3, bucket):  # noqa: F811
    assert_refused(url_for(bucket), s3.env(), {"AWS_ACCESS_KEY_ID": "NOSUCHKEYID000000000"},
                   "EACCES", ["credentials", "NOSUCHKEYID000000000"])


def test_missing_bucket_is_enxio(driver, s3):  # noqa: F811
    assert_refused("s3://peercling-no-such-bucket/x", s3.env(), None, "ENXIO",
                   ["peercling-no-such-bucket", "does not exist", "create it first"])


def test_service_down_then_back(driver, s3, bucket):  # noqa: F811
    """radosgw killed: the driver sees a transport failure (its
    DRIVER_EXPECT_DOWN check); restarted: the whole suite passes again."""
    s3.stop_rgw()
    try:
        rc, out, err = run_driver(url_for(bucket), s3.env(), {"DRIVER_EXPECT_DOWN": "1"})
        assert rc == 0 and "not ok" not in out, \
            "DRIVER_EXPECT_DOWN run exited %d\n--- stdout\n%s\n--- stderr\n%s" % (rc, out, err)
    finally:
        s3.start_rgw()
    assert_suite_passes(url_for(bucket), s3.env())

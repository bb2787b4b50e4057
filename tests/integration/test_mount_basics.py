"""peercling mount / umount: the errors, the cycle, and what status says."""
import os

import pytest

import helpers

from helpers import DAEMON_EXIT_WAIT, assert_same, check, is_mounted, read_file, run, \
    wait_for, write_file


# ---- errors ------------------------------------------------------------------

def test_mount_missing_mountpoint_fails_does_not_exist(mounts, volume, tmp_path):
    mp = tmp_path / "nope"
    p = mounts.mount(volume, mp, check_ok=False)
    assert p.returncode == 1, p.stderr
    assert "does not exist" in p.stderr
    assert not is_mounted(mp)
    assert not volume.lock_held()


def test_mount_nonempty_mountpoint_fails_not_empty(mounts, volume, mountpoint):
    write_file(mountpoint / "somebody.txt", b"x")
    p = mounts.mount(volume, mountpoint, check_ok=False)
    assert p.returncode == 1, p.stderr
    assert "not empty" in p.stderr
    assert not is_mounted(mountpoint)
    assert read_file(mountpoint / "somebody.txt") == b"x"


def test_mount_unknown_volume_fails_no_volume_named(mounts, peercling, mountpoint):
    p = peercling("mount", "ghost", mountpoint)
    assert p.returncode == 1, p.stderr
    assert "no volume named" in p.stderr
    assert "ghost" in p.stderr
    assert not is_mounted(mountpoint)


def test_mount_volume_twice_fails_in_use(mounts, volume, mounted, tmp_path):
    second = tmp_path / "mnt2"
    second.mkdir()
    p = mounts.mount(volume, second, check_ok=False)
    assert p.returncode == 1, p.stderr
    assert "in use" in p.stderr or "already mounted" in p.stderr, p.stderr
    assert not is_mounted(second)
    # the first mount is untouched
    write_file(mounted / "f", b"still here")
    assert read_file(mounted / "f") == b"still here"


def test_mount_on_a_regular_file_fails(mounts, volume, tmp_path):
    f = tmp_path / "plainfile"
    write_file(f, b"")
    p = mounts.mount(volume, f, check_ok=False)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip()
    assert not is_mounted(f)


@pytest.mark.parametrize("args", [
    [],
    ["vol"],
    ["vol", "MP", "extra"],
    ["--no-such-option", "vol", "MP"],
], ids=["no-args", "no-mountpoint", "extra-arg", "unknown-option"])
def test_mount_usage_errors_exit_2(mounts, volume, mountpoint, args):
    args = [str(mountpoint) if a == "MP" else a for a in args]
    mounts.known[str(mountpoint)] = volume   # cleaned up even if it did mount
    p = mounts.pc("mount", *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.strip()
    assert not is_mounted(mountpoint)


def test_mount_without_dev_fuse_fails_clearly(peercling, volume, mountpoint):
    # A private mount namespace (unshare -m, root in CI) with an empty /dev:
    # the machine's own /dev is untouched.
    bin_ = os.environ.get("PEERCLING_BIN") or helpers.BIN
    p = run(["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs none /dev && exec "$0" mount vol "$1"', bin_, str(mountpoint)],
            env=peercling.env)
    if p.returncode != 0 and "unshare" in p.stderr and "peercling" not in p.stderr:
        pytest.fail("unshare -m is not permitted here: %s" % p.stderr)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "/dev/fuse" in p.stderr and "fuse" in p.stderr
    assert not is_mounted(mountpoint)


def test_umount_of_a_directory_not_mounted_fails(peercling, mountpoint):
    p = peercling("umount", mountpoint)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.strip()


# ---- the cycle -----------------------------------------------------------------

def test_mount_returns_only_once_the_mount_is_live(mounts, volume, mountpoint):
    mounts.mount(volume, mountpoint)          # asserts exit 0 and the mount table
    assert os.stat(mountpoint).st_dev != os.stat(mountpoint.parent).st_dev
    assert os.listdir(mountpoint) == []
    assert volume.lock_held()


def test_new_volume_mounts_as_an_empty_directory(mounted):
    st = os.stat(mounted)
    assert st.st_mode & 0o170000 == 0o040000
    assert os.listdir(mounted) == []


def test_mount_accepts_a_relative_mountpoint(mounts, volume, mountpoint):
    mounts.known[str(mountpoint)] = volume   # so that teardown unmounts it
    p = mounts.pc("mount", volume.name, mountpoint.name, cwd=mountpoint.parent)
    check(p)
    assert is_mounted(mountpoint)
    write_file(mountpoint / "f", b"relative")
    assert read_file(mountpoint / "f") == b"relative"


def test_umount_returns_after_the_daemon_exited(mounts, volume, mounted):
    write_file(mounted / "f", b"x")
    check(mounts.pc("umount", mounted))
    assert not is_mounted(mounted)
    assert not volume.lock_held(), "peercling umount returned while the daemon still runs"


def test_mount_umount_cycles_keep_every_file(mounts, volume, mountpoint):
    for i in range(3):
        mounts.mount(volume, mountpoint)
        for j in range(i):
            assert read_file(mountpoint / ("f%d" % j)) == b"cycle %d" % j
        write_file(mountpoint / ("f%d" % i), b"cycle %d" % i)
        mounts.umount(mountpoint)
        assert os.listdir(mountpoint) == []   # the bare mountpoint again
    mounts.mount(volume, mountpoint)
    assert sorted(os.listdir(mountpoint)) == ["f0", "f1", "f2"]


def test_remount_keeps_data(mounted, remount):
    write_file(mounted / "hello.txt", b"hello\n")
    remount(mounted)
    assert_same(mounted / "hello.txt", b"hello\n")


def test_fusermount_u_unmounts_and_keeps_data(mounts, volume, mounted):
    write_file(mounted / "kept.txt", b"written before fusermount3 -u\n")
    check(run(["fusermount3", "-u", mounted]))
    assert not is_mounted(mounted)
    assert wait_for(lambda: volume.status().get("mounted") is False, DAEMON_EXIT_WAIT), \
        "status still says mounted %d s after fusermount3 -u" % DAEMON_EXIT_WAIT
    assert volume.wait_daemon_gone(), "daemon still alive after fusermount3 -u"
    mounts.mount(volume, mounted)
    assert_same(mounted / "kept.txt", b"written before fusermount3 -u\n")


def test_mount_foreground_stays_until_unmounted(mounts, volume, mountpoint):
    proc = mounts.mount_foreground(volume, mountpoint)
    assert wait_for(lambda: is_mounted(mountpoint) or proc.poll() is not None, 10)
    assert is_mounted(mountpoint), "mount -f exited %s without mounting" % proc.poll()
    assert proc.poll() is None, "mount -f returned while mounted"
    write_file(mountpoint / "f", b"fg")
    check(run(["fusermount3", "-u", mountpoint]))
    assert proc.wait(10) == 0
    assert not volume.lock_held()
    mounts.mount(volume, mountpoint)
    assert_same(mountpoint / "f", b"fg")


# ---- status ------------------------------------------------------------------------

def test_status_json_says_mounted_while_mounted(volume, mounted):
    st = volume.status()
    assert st["mounted"] is True
    assert st["name"] == "vol"
    for key in ("dir", "volume_id", "device_id", "cloud", "encrypted", "head", "commits",
                "cache"):
        assert key in st, key
    for key in ("blocks", "bytes", "limit", "pinned_bytes", "dirty_bytes"):
        assert key in st["cache"], key


def test_status_json_says_not_mounted_after_umount(mounts, volume, mounted):
    mounts.umount(mounted)
    assert volume.status()["mounted"] is False


def test_status_json_says_not_mounted_before_first_mount(volume):
    assert volume.status()["mounted"] is False

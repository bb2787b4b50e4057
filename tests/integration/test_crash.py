"""Crashes and damage: what fsync promises survives kill -9, a corrupted
block is an I/O error and never wrong data, and saves are batched into few
commits."""
import contextlib
import errno
import os
import shutil
import stat
import time
from pathlib import Path


from helpers import MiB, Volume, assert_same, check, is_mounted, lazy_unmount, raises_errno, \
    read_file, read_until_error, write_file


def fsync_write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def open_across_a_crash(path, mode):
    """open() whose close may fail: the daemon dies while the file is open."""
    f = open(path, mode)
    try:
        yield f
    finally:
        try:
            f.close()
        except OSError:
            pass   # its mount is gone


def assert_dead_mount(mp):
    """Requests that must reach the daemon fail with ENOTCONN.  (A stat of the
    mountpoint itself may still be answered from the kernel's attribute cache.)"""
    raises_errno(errno.ENOTCONN, os.stat, mp / ("never-looked-up-%d" % time.monotonic_ns()))
    raises_errno(errno.ENOTCONN, os.listdir, mp)


def crash_and_remount(mounts, volume, mp):
    """kill -9 the daemon, check the mount is dead, clear it, mount again."""
    mounts.crash(mp)
    assert_dead_mount(mp)
    lazy_unmount(mp)
    assert not is_mounted(mp)
    mounts.mount(volume, mp)


def test_fsynced_file_survives_kill_9_of_the_daemon(mounts, volume, mounted):
    data = os.urandom(3 * MiB + 17)
    fsync_write(mounted / "precious", data)
    crash_and_remount(mounts, volume, mounted)
    assert_same(mounted / "precious", data)


def test_a_big_fsync_on_a_file_still_open_survives_kill_9(mounts, volume, mounted):
    # Much data fsynced is kept where it was written (named in the journal)
    # and cut into blocks later: here the daemon dies before that happens.
    data = os.urandom(40 * MiB + 5)
    with open_across_a_crash(mounted / "big-open", "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        crash_and_remount(mounts, volume, mounted)
    assert_same(mounted / "big-open", data)


def test_a_big_fsync_survives_a_rename_a_commit_and_kill_9(mounts, volume, mounted):
    # The commit does not hold the fsynced data (not cut yet); the new
    # journal must name it again.  Writes after the fsync are not promised.
    data = os.urandom(8 * MiB)
    with open_across_a_crash(mounted / "draft", "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        os.rename(mounted / "draft", mounted / "final")
        check(mounts.pc("sync", mounted))   # commit: the journal starts over
        f.write(b"not synced")
        crash_and_remount(mounts, volume, mounted)
    assert not (mounted / "draft").exists()
    got = (mounted / "final").read_bytes()
    assert got[:len(data)] == data and len(got) in (len(data), len(data) + 10)


def test_a_big_overwrite_in_an_old_file_fsynced_survives_kill_9(mounts, volume, mounted, remount):
    old = os.urandom(12 * MiB)
    write_file(mounted / "old", old)
    remount(mounted)
    patch = os.urandom(3 * MiB)
    with open_across_a_crash(mounted / "old", "r+b") as f:
        f.seek(5 * MiB + 3)
        f.write(patch)
        f.flush()
        os.fsync(f.fileno())
        crash_and_remount(mounts, volume, mounted)
    want = bytearray(old)
    want[5 * MiB + 3:8 * MiB + 3] = patch
    assert_same(mounted / "old", bytes(want))


def test_fsynced_overwrite_survives_kill_9(mounts, volume, mounted, remount):
    p = mounted / "doc"
    write_file(p, b"version 1\n" * 1000)
    remount(mounted)
    with open(p, "r+b") as f:
        f.seek(5000)
        f.write(b"VERSION 2!")
        f.flush()
        os.fsync(f.fileno())
    want = bytearray(b"version 1\n" * 1000)
    want[5000:5010] = b"VERSION 2!"
    crash_and_remount(mounts, volume, mounted)
    assert_same(p, bytes(want))


def test_rename_mkdir_chmod_before_an_fsync_survive_kill_9(mounts, volume, mounted, remount):
    write_file(mounted / "old-name", b"renamed\n")
    write_file(mounted / "script", b"#!/bin/sh\n")
    remount(mounted)
    os.rename(mounted / "old-name", mounted / "new-name")
    os.mkdir(mounted / "newdir")
    os.chmod(mounted / "script", 0o755)
    fsync_write(mounted / "newdir" / "synced", b"synced last\n")
    crash_and_remount(mounts, volume, mounted)
    assert sorted(os.listdir(mounted)) == ["new-name", "newdir", "script"]
    assert_same(mounted / "new-name", b"renamed\n")
    assert os.path.isdir(mounted / "newdir")
    assert stat.S_IMODE(os.stat(mounted / "script").st_mode) == 0o755
    assert_same(mounted / "newdir" / "synced", b"synced last\n")


def test_file_closed_before_an_fsync_of_another_survives_kill_9(mounts, volume, mounted):
    data = os.urandom(300 * 1024)
    write_file(mounted / "closed-not-synced", data)
    fsync_write(mounted / "synced", b"synced after\n")
    crash_and_remount(mounts, volume, mounted)
    assert_same(mounted / "closed-not-synced", data)
    assert_same(mounted / "synced", b"synced after\n")


def test_symlink_xattr_times_before_an_fsync_survive_kill_9(mounts, volume, mounted):
    write_file(mounted / "f", b"x")
    os.symlink("f", mounted / "link")
    os.setxattr(mounted / "f", "user.k", b"v")
    os.utime(mounted / "f", ns=(1_000_000_000_111_111_111, 1_000_000_000_222_222_222))
    fsync_write(mounted / "synced", b"last\n")
    crash_and_remount(mounts, volume, mounted)
    assert os.readlink(mounted / "link") == "f"
    assert os.getxattr(mounted / "f", "user.k") == b"v"
    assert os.stat(mounted / "f").st_mtime_ns == 1_000_000_000_222_222_222
    assert_same(mounted / "synced", b"last\n")


def test_atomic_save_with_directory_fsync_survives_kill_9(mounts, volume, mounted, remount):
    p = mounted / "doc.txt"
    write_file(p, b"old\n")
    remount(mounted)
    fsync_write(mounted / ".doc.txt.tmp", b"new\n")
    os.replace(mounted / ".doc.txt.tmp", p)
    dfd = os.open(mounted, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    crash_and_remount(mounts, volume, mounted)
    assert os.listdir(mounted) == ["doc.txt"]
    assert_same(p, b"new\n")


def test_kill_9_leaves_an_enotconn_mount_that_fusermount_z_clears(mounts, volume, mounted):
    mounts.crash(mounted)
    assert_dead_mount(mounted)
    check(mounts.pc.run(["fusermount3", "-u", "-z", mounted]))
    assert not is_mounted(mounted)
    assert volume.status()["mounted"] is False
    mounts.mount(volume, mounted)


def test_corrupted_block_gives_eio_and_other_files_still_read(mounts, peercling, mountpoint,
                                                               tmp_path):
    # A cloud that goes away before the remount: the damaged block can then come
    # from nowhere else, so the only right answer is an error.
    cloud = tmp_path / "cloud"
    peercling.ok("init", "vol", "--cloud", "file://%s" % cloud)
    volume = Volume(peercling, "vol")
    mounts.mount(volume, mountpoint)
    victim = os.urandom(2 * MiB)
    bystander = os.urandom(2 * MiB)
    write_file(mountpoint / "victim", victim)
    write_file(mountpoint / "bystander", bystander)
    mounts.umount(mountpoint)

    # A block file is the plain bytes plus a 16-byte checksum trailer: the
    # blocks of `victim` are pieces of it.
    # The damaged one is the block nearest the middle of the file, so that
    # the pieces read before it are checked too.
    mine = sorted((abs(victim.find(b.read_bytes()[:-16]) - len(victim) // 2), str(b))
                  for b in volume.block_files()
                  if len(b.read_bytes()) >= 80 and b.read_bytes()[:-16] in victim)
    assert mine, "no block file under %s/blocks holds a piece of the file" % volume.dir
    bad = Path(mine[0][1])
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    os.chmod(bad, 0o644)
    bad.write_bytes(bytes(raw))
    if cloud.exists():
        shutil.move(str(cloud), str(tmp_path / "cloud-gone"))

    mounts.mount(volume, mountpoint)
    # Read as a program does, piece by piece (readahead reads the blocks
    # ahead in parallel, the damaged one among them): every piece before the
    # damage is right, then EIO.
    got, err = read_until_error(mountpoint / "victim", victim)
    assert err.errno == errno.EIO
    assert 0 < got < len(victim)
    raises_errno(errno.EIO, read_file, mountpoint / "victim")
    assert_same(mountpoint / "bystander", bystander)


def test_50_quick_saves_then_sync_make_few_commits(mounts, volume, mounted):
    p = mounted / "counter.txt"
    for i in range(50):
        write_file(p, b"save %d\n" % i)
    check(mounts.pc("sync", mounted))
    count = int(volume.git("rev-list", "--count", "main").stdout)
    assert 1 <= count < 10, "%d commits for 50 saves and one sync" % count
    assert "counter.txt" in volume.git("ls-tree", "-r", "--name-only", "main").stdout.split()
    mounts.umount(mounted)
    assert "counter.txt" in volume.git("ls-tree", "-r", "--name-only", "main").stdout.split()
    mounts.mount(volume, mounted)
    assert_same(p, b"save 49\n")


def test_sync_with_a_path_inside_the_mount_commits_now(mounts, volume, mounted):
    os.mkdir(mounted / "sub")
    write_file(mounted / "sub" / "f", b"x")
    check(mounts.pc("sync", cwd=mounted / "sub"))        # PATH defaults to cwd
    names = volume.git("ls-tree", "-r", "--name-only", "main").stdout.split()
    assert "sub/f" in names


def test_mount_on_a_dead_mount_fails_until_it_is_cleared(mounts, volume, mounted):
    mounts.crash(mounted)
    p = mounts.pc("mount", volume.name, mounted)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.strip()
    lazy_unmount(mounted)
    mounts.mount(volume, mounted)
    assert os.listdir(mounted) == []

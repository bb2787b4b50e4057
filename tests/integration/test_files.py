"""Files, directories and links: one small test per behaviour.

Each test writes through the mount with plain os calls, usually checks the
result, then unmounts and mounts again (so nothing comes from the daemon's
memory) and checks that the content is byte-identical."""
import calendar
import errno
import hashlib
import mmap
import os
import stat
import threading

import pytest

from helpers import MiB, RENAME_EXCHANGE, RENAME_NOREPLACE, assert_same, check, raises_errno, \
    renameat2, run, sha256_file, write_file

KiB = 1024
NOT_PERMITTED = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)


# ---- sizes -------------------------------------------------------------------

def test_empty_file_kept(mounted, remount):
    write_file(mounted / "empty", b"")
    assert os.stat(mounted / "empty").st_size == 0
    remount(mounted)
    assert os.stat(mounted / "empty").st_size == 0
    assert_same(mounted / "empty", b"")


def test_one_byte_file_kept(mounted, remount):
    write_file(mounted / "one", b"\x00")
    remount(mounted)
    assert_same(mounted / "one", b"\x00")


@pytest.mark.parametrize("size", [65535, 65536, 65537, 262143, 262144, 262145])
def test_file_around_chunk_boundaries_kept(mounted, remount, size):
    data = os.urandom(size)
    write_file(mounted / "f", data)
    assert_same(mounted / "f", data)
    remount(mounted)
    assert os.stat(mounted / "f").st_size == size
    assert_same(mounted / "f", data)


def test_3mib_random_file_kept(mounted, remount):
    data = os.urandom(3 * MiB)
    write_file(mounted / "f", data)
    assert_same(mounted / "f", data)
    remount(mounted)
    assert_same(mounted / "f", data)


def test_100mib_random_file_kept(mounted, remount):
    h = hashlib.sha256()
    with open(mounted / "big", "wb") as f:
        for _ in range(100):
            piece = os.urandom(MiB)
            h.update(piece)
            f.write(piece)
    assert os.stat(mounted / "big").st_size == 100 * MiB
    remount(mounted)
    assert os.stat(mounted / "big").st_size == 100 * MiB
    assert sha256_file(mounted / "big") == h.hexdigest()


# ---- writing into files --------------------------------------------------------

def test_append_from_two_opens_keeps_every_write(mounted, remount):
    p = mounted / "log.txt"
    write_file(p, b"start\n")
    a = open(p, "ab", buffering=0)
    b = open(p, "ab", buffering=0)
    try:
        for i in range(3):
            a.write(b"a%d\n" % i)
            b.write(b"b%d\n" % i)
    finally:
        a.close()
        b.close()
    want = b"start\na0\nb0\na1\nb1\na2\nb2\n"
    assert_same(p, want)
    remount(mounted)
    assert_same(p, want)


def test_truncate_down_keeps_the_prefix(mounted, remount):
    data = os.urandom(300 * KiB)
    write_file(mounted / "f", data)
    os.truncate(mounted / "f", 100000)
    assert_same(mounted / "f", data[:100000])
    remount(mounted)
    assert_same(mounted / "f", data[:100000])


def test_truncate_up_reads_zeros(mounted, remount):
    write_file(mounted / "f", b"0123456789")
    os.truncate(mounted / "f", MiB + 3)
    want = b"0123456789" + bytes(MiB + 3 - 10)
    assert_same(mounted / "f", want)
    remount(mounted)
    assert_same(mounted / "f", want)


def test_truncate_down_then_up_reads_zeros_not_old_data(mounted, remount):
    data = os.urandom(600 * KiB)
    write_file(mounted / "f", data)
    remount(mounted)
    os.truncate(mounted / "f", 1000)
    os.truncate(mounted / "f", 500 * KiB)
    want = data[:1000] + bytes(500 * KiB - 1000)
    assert_same(mounted / "f", want)
    remount(mounted)
    assert_same(mounted / "f", want)


def test_ftruncate_of_an_open_file_then_write(mounted, remount):
    p = mounted / "f"
    write_file(p, os.urandom(200 * KiB))
    fd = os.open(p, os.O_RDWR)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, b"fresh")   # the offset is still 0
        assert os.fstat(fd).st_size == 5
    finally:
        os.close(fd)
    assert_same(p, b"fresh")
    remount(mounted)
    assert_same(p, b"fresh")


def _expected_sparse_sha(pieces, size):
    """sha256 of a file of `size` zero bytes with pieces {offset: bytes} laid on it."""
    h = hashlib.sha256()
    pos = 0
    for off in sorted(pieces):
        while pos < off:
            n = min(MiB, off - pos)
            h.update(bytes(n))
            pos += n
        h.update(pieces[off])
        pos += len(pieces[off])
    while pos < size:
        n = min(MiB, size - pos)
        h.update(bytes(n))
        pos += n
    return h.hexdigest()


def test_sparse_writes_at_0_and_50mib_read_zeros_between(mounted, remount):
    p = mounted / "sparse"
    pieces = {0: b"A" * 4096, 50 * MiB: b"B" * 4096}
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, pieces[50 * MiB], 50 * MiB)
        os.pwrite(fd, pieces[0], 0)
    finally:
        os.close(fd)
    size = 50 * MiB + 4096
    want = _expected_sparse_sha(pieces, size)
    assert os.stat(p).st_size == size
    assert sha256_file(p) == want
    remount(mounted)
    assert os.stat(p).st_size == size
    assert sha256_file(p) == want


def test_overwrite_4k_in_the_middle_of_a_20mib_file(mounted, remount):
    p = mounted / "f"
    data = bytearray(os.urandom(20 * MiB))
    write_file(p, data)
    remount(mounted)
    patch = os.urandom(4096)
    off = 10 * MiB + 1234
    with open(p, "r+b") as f:
        f.seek(off)
        f.write(patch)
    data[off:off + 4096] = patch
    want = hashlib.sha256(data).hexdigest()
    assert os.stat(p).st_size == 20 * MiB
    assert sha256_file(p) == want
    remount(mounted)
    assert os.stat(p).st_size == 20 * MiB
    assert sha256_file(p) == want


def test_two_writers_on_different_regions_of_one_file(mounted, remount):
    p = mounted / "shared"
    write_file(p, b"")
    regions = [(0, os.urandom(2 * MiB)), (2 * MiB, os.urandom(2 * MiB))]
    errors = []

    def writer(off, data):
        try:
            fd = os.open(p, os.O_WRONLY)
            try:
                for i in range(0, len(data), 64 * KiB):
                    os.pwrite(fd, data[i:i + 64 * KiB], off + i)
            finally:
                os.close(fd)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=r) for r in regions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    want = regions[0][1] + regions[1][1]
    assert_same(p, want)
    remount(mounted)
    assert_same(p, want)


def test_mmap_write_msync_munmap_kept(mounted, remount):
    p = mounted / "mapped"
    data = bytearray(os.urandom(256 * KiB))
    write_file(p, data)
    with open(p, "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
        m[1000:1010] = b"0123456789"
        m[200000:200004] = b"WXYZ"
        m.flush()       # msync(MS_SYNC)
        m.close()       # munmap
    data[1000:1010] = b"0123456789"
    data[200000:200004] = b"WXYZ"
    assert_same(p, bytes(data))
    remount(mounted)
    assert_same(p, bytes(data))
    with open(p, "rb") as f:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            assert m[:] == bytes(data)


def test_open_unlinked_file_stays_readable_and_writable_until_closed(mounted, remount):
    p = mounted / "ghost"
    write_file(p, b"before unlink\n")
    f = open(p, "r+b", buffering=0)
    try:
        os.unlink(p)
        assert "ghost" not in os.listdir(mounted)
        raises_errno(errno.ENOENT, os.stat, p)
        assert f.read() == b"before unlink\n"
        f.write(b"after unlink\n")
        f.seek(0)
        assert f.read() == b"before unlink\nafter unlink\n"
        assert os.fstat(f.fileno()).st_size == 27
    finally:
        f.close()
    assert "ghost" not in os.listdir(mounted)
    remount(mounted)
    assert os.listdir(mounted) == []


# ---- metadata ----------------------------------------------------------------------

def test_xattrs_set_list_get_kept_across_remount(mounted, remount):
    p = mounted / "f"
    write_file(p, b"x")
    big = os.urandom(3000)
    os.setxattr(p, "user.color", b"blue")
    os.setxattr(p, "user.empty", b"")
    os.setxattr(p, "user.big", big)

    def check_xattrs():
        names = sorted(n for n in os.listxattr(p) if n.startswith("user."))
        assert names == ["user.big", "user.color", "user.empty"]
        assert os.getxattr(p, "user.color") == b"blue"
        assert os.getxattr(p, "user.empty") == b""
        assert os.getxattr(p, "user.big") == big

    check_xattrs()
    remount(mounted)
    check_xattrs()
    assert_same(p, b"x")


def test_xattr_remove_kept_across_remount(mounted, remount):
    p = mounted / "f"
    write_file(p, b"x")
    os.setxattr(p, "user.a", b"1")
    os.setxattr(p, "user.b", b"2")
    remount(mounted)
    os.removexattr(p, "user.a")
    raises_errno(errno.ENODATA, os.getxattr, p, "user.a")
    remount(mounted)
    assert [n for n in os.listxattr(p) if n.startswith("user.")] == ["user.b"]
    raises_errno(errno.ENODATA, os.getxattr, p, "user.a")
    assert os.getxattr(p, "user.b") == b"2"


def test_xattr_replace_changes_the_value(mounted, remount):
    p = mounted / "f"
    write_file(p, b"x")
    os.setxattr(p, "user.v", b"old value, long")
    os.setxattr(p, "user.v", b"new")
    raises_errno(errno.EEXIST, os.setxattr, p, "user.v", b"x", os.XATTR_CREATE)
    raises_errno(errno.ENODATA, os.setxattr, p, "user.none", b"x", os.XATTR_REPLACE)
    remount(mounted)
    assert os.getxattr(p, "user.v") == b"new"


def test_xattr_on_a_directory_kept(mounted, remount):
    d = mounted / "d"
    os.mkdir(d)
    os.setxattr(d, "user.tag", b"dir")
    remount(mounted)
    assert os.getxattr(d, "user.tag") == b"dir"


def test_namespaces_not_kept_are_unsupported_so_ls_asks_once(mounted):
    """security.* and system.* are not kept: getxattr says EOPNOTSUPP (not
    ENODATA, "kept but empty"), so ls -l stops asking for them after the
    first file of the mount instead of asking for every file; a user.* name
    on a symlink just has no value, as on ext4."""
    d = mounted / "d"
    os.mkdir(d)
    for i in range(40):
        write_file(d / f"f{i}", b"x")
    os.symlink("f0", d / "link")
    for p in (d, d / "f0"):
        for name in ("security.selinux", "system.posix_acl_access", "trusted.x"):
            raises_errno(errno.EOPNOTSUPP, os.getxattr, p, name)
        raises_errno(errno.EOPNOTSUPP, os.setxattr, p, "security.x", b"1")
    raises_errno(errno.ENODATA, os.getxattr, d / "link", "user.a", follow_symlinks=False)
    os.setxattr(d / "f1", "user.a", b"1")
    traced = check(run(["strace", "-f", "-c", "-e", "trace=getxattr,lgetxattr",
                        "ls", "-lR", str(mounted)]))
    calls = sum(int(line.split()[3]) for line in traced.stderr.splitlines()
                if line.split()[-1:] in (["getxattr"], ["lgetxattr"]))
    assert 1 <= calls <= 4, traced.stderr
    assert traced.stdout.count(" f") >= 40


def test_noxattr_turns_extended_attributes_off_and_keeps_the_stored_ones(mounts, volume,
                                                                        mountpoint):
    """-o noxattr: the kernel hears ENOSYS once and answers EOPNOTSUPP
    itself from then on (ls -l stops costing two round trips per file); the
    other options still reach FUSE, and the attributes already stored come
    back at the next normal mount."""
    mounts.mount(volume, mountpoint)
    p = mountpoint / "f"
    write_file(p, b"x")
    os.setxattr(p, "user.kept", b"yes")
    mounts.umount(mountpoint)
    mounts.mount(volume, mountpoint, "-o", "noxattr,ro")
    raises_errno(errno.EOPNOTSUPP, os.getxattr, p, "user.kept")
    raises_errno(errno.EOPNOTSUPP, os.listxattr, p)
    raises_errno(errno.EOPNOTSUPP, os.getxattr, p, "security.selinux")
    assert p.read_bytes() == b"x"
    raises_errno(errno.EROFS, write_file, mountpoint / "g", b"y")  # ro reached FUSE
    assert check(run(["ls", "-l", str(mountpoint)])).stdout.count("\n") == 2
    mounts.umount(mountpoint)
    mounts.mount(volume, mountpoint)
    assert os.getxattr(p, "user.kept") == b"yes"


def test_chmod_modes_kept_across_remount(mounted, remount):
    modes = {"a": 0o600, "b": 0o640, "c": 0o755, "d": 0o700, "e": 0o444}
    for name, mode in modes.items():
        write_file(mounted / name, name.encode())
        os.chmod(mounted / name, mode)
    remount(mounted)
    for name, mode in modes.items():
        assert stat.S_IMODE(os.stat(mounted / name).st_mode) == mode, name


def test_chmod_x_shell_script_runs_after_remount(mounted, remount):
    p = mounted / "hi.sh"
    write_file(p, b"#!/bin/sh\necho hi\n")
    os.chmod(p, os.stat(p).st_mode | 0o111)
    assert check(run([p])).stdout == "hi\n"
    remount(mounted)
    assert os.stat(p).st_mode & 0o111 == 0o111
    assert check(run([p])).stdout == "hi\n"


def test_touch_d_mtime_kept_with_nanoseconds(mounted, remount, peercling):
    p = mounted / "f"
    write_file(p, b"old")
    env = dict(peercling.env, TZ="UTC")
    check(run(["touch", "-d", "2001-02-03 04:05:06.123456789", p], env=env))
    want = calendar.timegm((2001, 2, 3, 4, 5, 6)) * 10**9 + 123456789
    assert os.stat(p).st_mtime_ns == want
    remount(mounted)
    assert os.stat(p).st_mtime_ns == want


def test_touch_d_atime_kept_with_nanoseconds(mounted, remount, peercling):
    p = mounted / "f"
    write_file(p, b"old")
    env = dict(peercling.env, TZ="UTC")
    check(run(["touch", "-d", "2001-02-03 04:05:06.123456789", p], env=env))
    want = calendar.timegm((2001, 2, 3, 4, 5, 6)) * 10**9 + 123456789
    assert os.stat(p).st_atime_ns == want
    remount(mounted)
    assert os.stat(p).st_atime_ns == want


def test_utime_ns_kept_across_remount(mounted, remount):
    p = mounted / "f"
    write_file(p, b"x")
    os.utime(p, ns=(1234567890123456789, 987654321987654321))
    remount(mounted)
    st = os.stat(p)
    assert st.st_mtime_ns == 987654321987654321
    assert st.st_atime_ns == 1234567890123456789


def test_mtime_of_a_written_file_kept_across_remount(mounted, remount):
    p = mounted / "f"
    write_file(p, b"content")
    before = os.stat(p).st_mtime_ns
    remount(mounted)
    assert os.stat(p).st_mtime_ns == before


def test_chown_to_another_uid_fails_with_eperm(mounted):
    p = mounted / "f"
    write_file(p, b"x")
    raises_errno(errno.EPERM, os.chown, p, 12345, -1)
    assert os.stat(p).st_uid == os.getuid()


def test_chown_to_own_uid_succeeds(mounted):
    p = mounted / "f"
    write_file(p, b"x")
    os.chown(p, os.getuid(), -1)
    assert os.stat(p).st_uid == os.getuid()


def test_statvfs_works(mounted):
    st = os.statvfs(mounted)
    assert st.f_bsize > 0
    assert st.f_blocks >= st.f_bfree >= st.f_bavail
    assert st.f_namemax >= 255


# ---- directories, names, links -------------------------------------------------------

def test_mkdir_and_rmdir_kept_across_remount(mounted, remount):
    os.mkdir(mounted / "d")
    os.mkdir(mounted / "d" / "e")
    write_file(mounted / "d" / "e" / "f", b"deep")
    remount(mounted)
    assert os.path.isdir(mounted / "d" / "e")
    assert_same(mounted / "d" / "e" / "f", b"deep")
    os.unlink(mounted / "d" / "e" / "f")
    os.rmdir(mounted / "d" / "e")
    os.rmdir(mounted / "d")
    remount(mounted)
    assert os.listdir(mounted) == []


def test_empty_directory_kept_across_remount(mounted, remount):
    os.mkdir(mounted / "empty")
    remount(mounted)
    assert os.path.isdir(mounted / "empty")
    assert os.listdir(mounted / "empty") == []


def test_directory_link_count_is_two_plus_subdirectories(mounted, remount):
    """As on ext4: find and other tree walkers read st_nlink."""
    os.mkdir(mounted / "d")
    assert os.stat(mounted / "d").st_nlink == 2
    for name in ("a", "b", "c"):
        os.mkdir(mounted / "d" / name)
    write_file(mounted / "d" / "file", b"not a directory")
    assert os.stat(mounted / "d").st_nlink == 5
    os.rmdir(mounted / "d" / "c")
    assert os.stat(mounted / "d").st_nlink == 4
    os.mkdir(mounted / "other")
    os.rename(mounted / "d" / "b", mounted / "other" / "b")
    assert os.stat(mounted / "d").st_nlink == 3
    assert os.stat(mounted / "other").st_nlink == 3
    remount(mounted)
    assert os.stat(mounted / "d").st_nlink == 3
    assert os.stat(mounted / "other").st_nlink == 3
    assert os.stat(mounted).st_nlink == 4


def test_mkdir_of_existing_name_gives_eexist(mounted):
    os.mkdir(mounted / "d")
    raises_errno(errno.EEXIST, os.mkdir, mounted / "d")


def test_rmdir_of_non_empty_directory_gives_enotempty(mounted, remount):
    os.mkdir(mounted / "d")
    write_file(mounted / "d" / "f", b"x")
    raises_errno(errno.ENOTEMPTY, os.rmdir, mounted / "d")
    remount(mounted)
    raises_errno(errno.ENOTEMPTY, os.rmdir, mounted / "d")
    assert_same(mounted / "d" / "f", b"x")


def test_symlink_readlink_and_lstat_kept(mounted, remount):
    write_file(mounted / "target.txt", b"pointed at\n")
    os.symlink("target.txt", mounted / "link")

    def check_link():
        assert os.readlink(mounted / "link") == "target.txt"
        assert stat.S_ISLNK(os.lstat(mounted / "link").st_mode)
        assert_same(mounted / "link", b"pointed at\n")

    check_link()
    remount(mounted)
    check_link()


def test_dangling_symlinks_kept(mounted, remount):
    os.symlink("nowhere/at/all", mounted / "rel")
    os.symlink("/nonexistent/peercling/target", mounted / "abs")

    def check_links():
        assert os.readlink(mounted / "rel") == "nowhere/at/all"
        assert os.readlink(mounted / "abs") == "/nonexistent/peercling/target"
        for n in ("rel", "abs"):
            assert stat.S_ISLNK(os.lstat(mounted / n).st_mode)
            assert not os.path.exists(mounted / n)

    check_links()
    remount(mounted)
    check_links()


def test_rename_over_an_existing_file_replaces_it(mounted, remount):
    write_file(mounted / "a", b"AAA")
    write_file(mounted / "b", b"BBBBBB")
    os.rename(mounted / "a", mounted / "b")
    assert os.listdir(mounted) == ["b"]
    assert_same(mounted / "b", b"AAA")
    remount(mounted)
    assert os.listdir(mounted) == ["b"]
    assert_same(mounted / "b", b"AAA")


def test_rename_noreplace_onto_existing_gives_eexist(mounted, remount):
    write_file(mounted / "a", b"AAA")
    write_file(mounted / "b", b"BBB")
    raises_errno(errno.EEXIST, renameat2, mounted / "a", mounted / "b", RENAME_NOREPLACE)
    renameat2(mounted / "a", mounted / "c", RENAME_NOREPLACE)
    remount(mounted)
    assert sorted(os.listdir(mounted)) == ["b", "c"]
    assert_same(mounted / "b", b"BBB")
    assert_same(mounted / "c", b"AAA")


def test_rename_exchange_swaps_two_files(mounted, remount):
    write_file(mounted / "a", b"AAA")
    write_file(mounted / "b", b"BBBBB")
    os.chmod(mounted / "b", 0o755)
    renameat2(mounted / "a", mounted / "b", RENAME_EXCHANGE)
    assert_same(mounted / "a", b"BBBBB")
    assert_same(mounted / "b", b"AAA")
    remount(mounted)
    assert_same(mounted / "a", b"BBBBB")
    assert_same(mounted / "b", b"AAA")
    assert stat.S_IMODE(os.stat(mounted / "a").st_mode) == 0o755


def test_rename_a_directory_with_contents(mounted, remount):
    os.makedirs(mounted / "d" / "sub")
    write_file(mounted / "d" / "x", b"x")
    write_file(mounted / "d" / "sub" / "y", b"y")
    os.symlink("../x", mounted / "d" / "sub" / "l")
    os.rename(mounted / "d", mounted / "e")

    def check_tree():
        assert os.listdir(mounted) == ["e"]
        assert_same(mounted / "e" / "x", b"x")
        assert_same(mounted / "e" / "sub" / "y", b"y")
        assert_same(mounted / "e" / "sub" / "l", b"x")

    check_tree()
    remount(mounted)
    check_tree()


def test_readdir_lists_all_of_1000_files(mounted, remount):
    names = ["f%04d" % i for i in range(1000)]
    for n in names:
        write_file(mounted / n, n.encode())
    assert sorted(os.listdir(mounted)) == names
    remount(mounted)
    with os.scandir(mounted) as it:
        entries = sorted((e.name, e.is_file(follow_symlinks=False)) for e in it)
    assert entries == [(n, True) for n in names]
    assert_same(mounted / "f0999", b"f0999")


def test_hard_link_fails_with_eperm(mounted, remount):
    write_file(mounted / "a", b"x")
    raises_errno(NOT_PERMITTED, os.link, mounted / "a", mounted / "b")
    assert os.listdir(mounted) == ["a"]
    remount(mounted)
    assert os.listdir(mounted) == ["a"]


def test_mknod_of_a_device_fails_with_eperm(mounted):
    raises_errno(errno.EPERM, os.mknod, mounted / "null", 0o600 | stat.S_IFCHR,
                 os.makedev(1, 3))
    assert os.listdir(mounted) == []


def test_rename_over_an_open_file_keeps_the_old_data_readable(mounted, remount):
    write_file(mounted / "old", b"old content\n")
    write_file(mounted / "new", b"new content\n")
    with open(mounted / "old", "rb") as f:
        os.rename(mounted / "new", mounted / "old")
        assert f.read() == b"old content\n"
        assert_same(mounted / "old", b"new content\n")
    remount(mounted)
    assert os.listdir(mounted) == ["old"]
    assert_same(mounted / "old", b"new content\n")


def test_rename_a_file_onto_a_directory_gives_eisdir(mounted):
    write_file(mounted / "f", b"x")
    os.mkdir(mounted / "d")
    raises_errno(errno.EISDIR, os.rename, mounted / "f", mounted / "d")
    assert_same(mounted / "f", b"x")


def test_rename_a_directory_onto_a_non_empty_directory_gives_enotempty(mounted):
    os.makedirs(mounted / "a" / "in-a")
    os.makedirs(mounted / "b" / "in-b")
    raises_errno((errno.ENOTEMPTY, errno.EEXIST), os.rename, mounted / "a", mounted / "b")
    assert os.listdir(mounted / "b") == ["in-b"]


def test_rename_a_directory_onto_an_empty_directory_replaces_it(mounted, remount):
    os.makedirs(mounted / "a" / "in-a")
    os.mkdir(mounted / "b")
    os.rename(mounted / "a", mounted / "b")
    remount(mounted)
    assert os.listdir(mounted) == ["b"]
    assert os.listdir(mounted / "b") == ["in-a"]


def test_create_exclusive_on_an_existing_name_gives_eexist(mounted):
    write_file(mounted / "f", b"mine")
    raises_errno(errno.EEXIST, os.open, mounted / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert_same(mounted / "f", b"mine")


def test_unlink_is_kept_across_remount(mounted, remount):
    write_file(mounted / "a", b"a")
    write_file(mounted / "b", b"b")
    remount(mounted)
    os.unlink(mounted / "a")
    raises_errno(errno.ENOENT, os.stat, mounted / "a")
    remount(mounted)
    assert os.listdir(mounted) == ["b"]


def test_write_and_read_back_through_one_read_write_fd(mounted, remount):
    fd = os.open(mounted / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"hello world")
        os.lseek(fd, 6, os.SEEK_SET)
        assert os.read(fd, 100) == b"world"
        os.pwrite(fd, b"W", 6)
        assert os.pread(fd, 100, 0) == b"hello World"
    finally:
        os.close(fd)
    remount(mounted)
    assert_same(mounted / "f", b"hello World")


UNUSUAL_NAMES = ["with space", "tab\there", "new\nline", "-leading-dash", ".hidden",
                 "caf\u00e9 \u6f22\u5b57 \U0001f600", "x" * 255, "quote\"s and 'single'",
                 "back\\slash", os.fsdecode(b"latin1-\xe9-not-utf8")]


def test_unusual_file_names_kept(mounted, remount):
    for i, name in enumerate(UNUSUAL_NAMES):
        write_file(mounted / name, b"%d" % i)
    assert sorted(os.listdir(mounted)) == sorted(UNUSUAL_NAMES)
    remount(mounted)
    assert sorted(os.listdir(mounted)) == sorted(UNUSUAL_NAMES)
    for i, name in enumerate(UNUSUAL_NAMES):
        assert_same(mounted / name, b"%d" % i)


def test_name_longer_than_255_bytes_gives_enametoolong(mounted):
    raises_errno(errno.ENAMETOOLONG, os.open, mounted / ("y" * 256), os.O_WRONLY | os.O_CREAT)


def test_deep_directory_path_kept(mounted, remount):
    deep = mounted.joinpath(*["d%02d" % i for i in range(40)])
    os.makedirs(deep)
    write_file(deep / "leaf", b"leaf")
    remount(mounted)
    assert_same(deep / "leaf", b"leaf")


def test_symlink_to_a_directory_is_followed(mounted, remount):
    os.makedirs(mounted / "real" / "inner")
    write_file(mounted / "real" / "inner" / "f", b"through the link")
    os.symlink("real/inner", mounted / "shortcut")
    remount(mounted)
    assert os.listdir(mounted / "shortcut") == ["f"]
    assert_same(mounted / "shortcut" / "f", b"through the link")
    assert stat.S_ISLNK(os.lstat(mounted / "shortcut").st_mode)


def test_open_with_o_trunc_replaces_the_content(mounted, remount):
    write_file(mounted / "f", os.urandom(MiB))
    remount(mounted)
    write_file(mounted / "f", b"short")
    assert_same(mounted / "f", b"short")
    remount(mounted)
    assert_same(mounted / "f", b"short")


def test_many_small_unaligned_writes_kept(mounted, remount):
    data = os.urandom(777 * 1000)
    with open(mounted / "f", "wb", buffering=0) as f:
        for i in range(0, len(data), 777):
            f.write(data[i:i + 777])
    assert_same(mounted / "f", data)
    remount(mounted)
    assert_same(mounted / "f", data)

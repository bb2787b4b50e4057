"""A full disk under the volume's state directory (its cache, journal and
repository on a small tmpfs): writes that do not fit fail with ENOSPC and
break nothing already written, reads of blocks that come from the cloud
still return the right bytes though they cannot be cached, and once space
is freed everything works again and reaches the cloud."""
import errno
import os
import subprocess

import pytest

from conftest import Mounts, Peercling
from helpers import MiB, Volume, assert_same, check, read_file, wait_for, write_file

TMPFS = 48 * MiB


class SmallHome:
    """A device whose PEERCLING_HOME is a tmpfs of TMPFS bytes."""

    def __init__(self, root):
        root.mkdir()
        self.pc = Peercling(root)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % TMPFS,
                        "peercling-test-full", str(self.pc.home)], check=True)
        self.mounts = Mounts(self.pc)
        self.mp = root / "mnt"
        self.mp.mkdir()
        self.vol = Volume(self.pc, "vol")
        self.filler = self.pc.home / "filler"

    def fill(self, leave):
        """Fills the tmpfs until about `leave` bytes are free."""
        st = os.statvfs(self.pc.home)
        free = st.f_bavail * st.f_frsize
        with open(self.filler, "ab") as f:
            f.write(b"\0" * max(0, free - leave))
        st = os.statvfs(self.pc.home)
        return st.f_bavail * st.f_frsize

    def unfill(self):
        self.filler.unlink()

    def close(self):
        problems = self.mounts.cleanup()
        subprocess.run(["umount", "-l", str(self.pc.home)], check=False)
        return problems


@pytest.fixture
def small(tmp_path):
    made = []

    def make(name):
        d = SmallHome(tmp_path / name)
        made.append(d)
        return d

    yield make
    for d in made:
        for p in d.close():
            print("teardown:", p)


def test_a_cold_read_on_a_full_disk_still_returns_the_right_bytes(peercling, mounts, tmp_path,
                                                                  small):
    cloud = tmp_path / "cloud"
    peercling.ok("init", "vol", "--cloud", "file://%s" % cloud)
    a = Volume(peercling, "vol")
    mp = tmp_path / "mnt-a"
    mp.mkdir()
    mounts.mount(a, mp)
    data = os.urandom(24 * MiB)
    write_file(mp / "big", data)
    check(peercling("sync", mp))
    key = peercling.ok("key", "vol").stdout.strip()

    b = small("b")
    check(b.pc("clone", "file://%s" % cloud, "vol", "--key", key))
    b.mounts.mount(b.vol, b.mp)
    left = b.fill(256 * 1024)
    assert left < 1 * MiB
    # Sequential and then scattered reads: every byte right, none cached.
    assert_same(b.mp / "big", data)
    with open(b.mp / "big", "rb") as f:
        for off in range(0, len(data), 3 * MiB + 4096):
            f.seek(off)
            assert f.read(4096) == data[off:off + 4096], off
    cache = b.vol.status()["cache"]
    assert cache["bytes"] < 2 * MiB, cache
    log = (b.vol.dir / "log").read_text(errors="replace")
    assert "cannot be kept in the cache (the disk is full)" in log, log

    # With room again, reads fill the cache as usual, the same daemon on.
    # The blocks still in its memory from the first read are stored by
    # readahead threads the reader does not wait for, and the kernel may
    # keep some pages through a drop: read again until all are in.
    b.unfill()

    def cached_after_a_read():
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        assert_same(b.mp / "big", data)
        return b.vol.status()["cache"]["bytes"] >= len(data)
    assert wait_for(cached_after_a_read, 30, interval=1), b.vol.status()["cache"]


def test_writes_on_a_full_disk_fail_with_enospc_and_lose_nothing(tmp_path, small):
    d = small("d")
    check(d.pc("init", "vol", "--cloud", "file://%s" % (tmp_path / "cloud")))
    d.mounts.mount(d.vol, d.mp)
    kept = os.urandom(2 * MiB)
    write_file(d.mp / "kept", kept)
    check(d.pc("sync", d.mp))
    d.fill(512 * 1024)

    big = os.urandom(16 * MiB)
    with pytest.raises(OSError) as e:
        with open(d.mp / "too-big", "wb") as f:
            f.write(big)
            f.flush()
            os.fsync(f.fileno())
    assert e.value.errno == errno.ENOSPC, e.value
    assert_same(d.mp / "kept", kept)
    assert sorted(os.listdir(d.mp)) in (["kept"], ["kept", "too-big"])

    # Room again: the same write goes through, syncs, and survives a remount.
    d.unfill()
    write_file(d.mp / "too-big", big)
    check(d.pc("sync", d.mp))
    d.mounts.umount(d.mp)
    d.mounts.mount(d.vol, d.mp)
    assert_same(d.mp / "kept", kept)
    assert_same(d.mp / "too-big", big)
    assert read_file(d.mp / "kept") == kept

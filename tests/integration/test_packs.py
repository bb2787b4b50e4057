"""Blocks in packs on a real WebDAV server (doc/cloud.md): a sync sends a
file's blocks in a few pack PUTs; a fresh device reading the file from
start to end takes one ranged GET per window of many blocks; scattered
reads, small or spanning blocks, fetch single blocks, never whole windows;
a pack damaged on the server gives EIO for what it holds and never wrong
data; a device finds packs another device wrote after it started; a
daemon killed in the middle of a cold read leaves a cache the next mount
reads right."""
import os
import random
import threading
import time

import pytest

from helpers import MiB, check, is_mounted, lazy_unmount, read_file, write_file
from test_upload_interrupted import dav_device, finish
from webdav_server import webdav  # noqa: F401  (module-scoped fixture)

MAX_SEALED = 256 * 1024 + 41   # the largest block, sealed


def mib_chunks(path):
    """The file at path, read sequentially 1 MiB at a time."""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(MiB)
            if not chunk:
                return
            yield chunk


def pack_gets(webdav, mark):
    return [r for r in webdav.requests_since(mark) if r[0] == "GET" and "/packs/" in r[3]]


def scattered_reads(path, offsets, data, sizes):
    """Reads data[off:off+size] at each offset, each size in turn, with the
    kernel's readahead off (what is measured is ours); the pages of each
    read but the last are dropped after it, so that the next read at the
    same offset asks the daemon for all of its pages, not just the ones
    after: that would continue the read before, and look sequential."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for off in offsets:
            for k, n in enumerate(sizes):
                assert os.pread(fd, n, off) == data[off:off + n]
                if k + 1 < len(sizes):
                    os.posix_fadvise(fd, off, n, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def volume_on(tmp_path, webdav, path, devices, data):
    """Device a on webdav://.../path with big.bin = data, synced; returns
    (a, key)."""
    a = dav_device(tmp_path, webdav, "a")
    devices.append(a)
    check(a.pc("init", "vol", "--cloud", webdav.url(path)))
    cfg = a.vol.dir / "config"
    cfg.write_text(cfg.read_text() + "[sync]\n\tinterval = 0\n")
    a.mount()
    mark = webdav.requests_mark()
    write_file(a.mp / "big.bin", data)
    a.sync()
    puts = [r for r in webdav.requests_since(mark) if r[0] == "PUT" and "/packs/" in r[3]]
    # 32 MiB at most 4 MiB a pack: about 8 pack PUTs, not one per block.
    assert 8 <= len(puts) <= 12, puts
    return a, check(a.pc("key", "vol")).stdout.strip()


def clone(tmp_path, webdav, name, path, key, devices):
    d = dav_device(tmp_path, webdav, name)
    devices.append(d)
    check(d.pc("clone", webdav.url(path), "vol", "--key", key))
    cfg = d.vol.dir / "config"
    cfg.write_text(cfg.read_text() + "[sync]\n\tinterval = 0\n")
    d.mount()
    return d


def test_a_cold_sequential_read_takes_one_get_per_window(tmp_path, webdav):
    devices = []
    try:
        data = os.urandom(32 * MiB)
        a, key = volume_on(tmp_path, webdav, "vol-seq", devices, data)
        blocks = a.vol.status()["cache"]["blocks"]
        assert blocks > 300, blocks
        b = clone(tmp_path, webdav, "b", "vol-seq", key, devices)
        mark = webdav.requests_mark()
        assert b"".join(mib_chunks(b.mp / "big.bin")) == data
        gets = pack_gets(webdav, mark)
        # Windows of up to 1 MiB: about 32 GETs; a few lone blocks where
        # prefetch threads start out of order.  One GET per block would be
        # over 400.
        assert 1 <= len(gets) <= blocks // 4, (len(gets), blocks)
        assert max(r[2] for r in gets) > 512 * 1024   # windows of many blocks
        assert sum(r[2] for r in gets) < len(data) * 1.1   # nothing fetched twice
    finally:
        finish(devices)


def test_two_readers_of_one_file_at_once_both_get_windows(tmp_path, webdav):
    """Two programs reading one file from start to end at the same time
    (here: the first and the second half, 128 KiB of each in turn, without
    the kernel's readahead, which would otherwise send each reader's reads
    in runs): every read the daemon sees follows the other reader's, yet
    each continues its own reader's last one.  Both are sequential
    readers."""
    devices = []
    try:
        data = os.urandom(32 * MiB)
        a, key = volume_on(tmp_path, webdav, "vol-two", devices, data)
        blocks = a.vol.status()["cache"]["blocks"]
        b = clone(tmp_path, webdav, "b", "vol-two", key, devices)
        mark = webdav.requests_mark()
        half, step = len(data) // 2, 128 * 1024
        one = os.open(b.mp / "big.bin", os.O_RDONLY)
        two = os.open(b.mp / "big.bin", os.O_RDONLY)
        try:
            for fd in (one, two):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            for off in range(0, half, step):
                assert os.pread(one, step, off) == data[off:off + step], off
                assert os.pread(two, step, half + off) == data[half + off:half + off + step]
        finally:
            os.close(one)
            os.close(two)
        gets = pack_gets(webdav, mark)
        # As for one reader: windows, not a GET per block.
        assert 1 <= len(gets) <= blocks // 4, (len(gets), blocks)
        assert max(r[2] for r in gets) > 512 * 1024
    finally:
        finish(devices)


def test_scattered_small_reads_fetch_single_blocks(tmp_path, webdav):
    devices = []
    try:
        data = os.urandom(32 * MiB)
        a, key = volume_on(tmp_path, webdav, "vol-rand", devices, data)
        c = clone(tmp_path, webdav, "c", "vol-rand", key, devices)
        offsets = [i * 2 * MiB + 12345 for i in range(16)]
        random.Random(7).shuffle(offsets)
        mark = webdav.requests_mark()
        scattered_reads(c.mp / "big.bin", offsets, data, [4096])
        gets = pack_gets(webdav, mark)
        assert len(gets) >= 16, gets
        # Each read fetched its block (and at most a neighbour the kernel
        # asked for), never a window.
        assert max(r[2] for r in gets) <= 2 * MAX_SEALED, gets
        assert sum(r[2] for r in gets) <= 16 * 3 * MAX_SEALED, gets
    finally:
        finish(devices)


def test_a_scattered_read_across_blocks_fetches_those_blocks_not_a_window(tmp_path, webdav):
    """A read that jumps somewhere and spans two blocks must not pass for a
    sequential reader: that its second block follows a block already here
    (its first) says nothing of what comes next.  Each read here lands in a
    block a 4 KiB read has just brought, so the reader reaches the next
    block at once, usually before a prefetch thread does."""
    devices = []
    try:
        data = os.urandom(32 * MiB)
        a, key = volume_on(tmp_path, webdav, "vol-span", devices, data)
        c = clone(tmp_path, webdav, "c", "vol-span", key, devices)
        # Page-aligned reads of 128 KiB: the kernel sends each as one FUSE
        # request (a longer one comes as several, the later ones rightly
        # looking sequential).
        offsets = [i * MiB + 13 * 4096 for i in range(1, 31, 2)]
        random.Random(11).shuffle(offsets)
        mark = webdav.requests_mark()
        # 128 KiB is more than most blocks: into the next.
        scattered_reads(c.mp / "big.bin", offsets, data, [4096, 128 * 1024])
        gets = pack_gets(webdav, mark)
        assert len(gets) > len(offsets), gets   # some reads spanned blocks
        # Single blocks only: a window is up to 1 MiB.
        assert max(r[2] for r in gets) <= 2 * MAX_SEALED, gets
        assert sum(r[2] for r in gets) <= len(offsets) * 5 * MAX_SEALED, gets
    finally:
        finish(devices)


def test_a_damaged_pack_gives_eio_never_wrong_data(tmp_path, webdav):
    devices = []
    try:
        data = os.urandom(32 * MiB)
        a, key = volume_on(tmp_path, webdav, "vol-bad", devices, data)
        write_file(a.mp / "small.txt", b"unharmed\n")
        a.sync()
        packs = sorted((webdav.data / "vol-bad" / "packs").rglob("*"))
        packs = [p for p in packs if p.is_file()]
        # Damage the middle of every pack of big.bin (the biggest ones).
        big = sorted(packs, key=lambda p: p.stat().st_size)[-4:]
        for p in big:
            raw = bytearray(p.read_bytes())
            for k in range(0, len(raw), 300 * 1024):
                raw[k + 100] ^= 0x55
            p.write_bytes(bytes(raw))
        b = clone(tmp_path, webdav, "b", "vol-bad", key, devices)
        assert read_file(b.mp / "small.txt") == b"unharmed\n"
        got = bytearray()
        with pytest.raises(OSError) as e:
            for chunk in mib_chunks(b.mp / "big.bin"):
                assert chunk == data[len(got):len(got) + len(chunk)], "wrong data"
                got += chunk
        assert e.value.errno == 5, e.value   # EIO
        # The daemon lives on and says what happened.
        log = (b.vol.dir / "log").read_text(errors="replace")
        assert "does not open" in log or "corrupt" in log or "does not match" in log, log[-2000:]
        assert b.vol.status()["cache"]["blocks"] >= 1
    finally:
        finish(devices)


def test_a_device_finds_packs_written_after_it_started(tmp_path, webdav):
    devices = []
    try:
        first = os.urandom(4 * MiB)
        a, key = volume_on(tmp_path, webdav, "vol-late", devices, os.urandom(32 * MiB))
        b = clone(tmp_path, webdav, "b", "vol-late", key, devices)
        assert len(read_file(b.mp / "big.bin")) == 32 * MiB
        # a writes more; b's daemon has never heard of the new packs.
        write_file(a.mp / "later.bin", first)
        a.sync()
        b.sync()
        assert read_file(b.mp / "later.bin") == first
        # A restart reads the indexes it keeps, and lists nothing twice.
        known = sorted(os.listdir(b.vol.dir / "packs"))
        assert len(known) >= 9, known
        b.mounts.umount(b.mp)
        b.mount()
        mark = webdav.requests_mark()
        assert read_file(b.mp / "later.bin") == first   # from the cache
        assert not [r for r in webdav.requests_since(mark) if "/index/" in r[3]]
    finally:
        finish(devices)


def test_kill_9_in_the_middle_of_a_cold_read_leaves_a_good_cache(tmp_path, webdav):
    devices = []
    try:
        data = os.urandom(32 * MiB)
        a, key = volume_on(tmp_path, webdav, "vol-kill", devices, data)
        b = clone(tmp_path, webdav, "b", "vol-kill", key, devices)
        got = bytearray()
        wrong = []
        started = threading.Event()

        def reader():
            try:
                for chunk in mib_chunks(b.mp / "big.bin"):
                    if chunk != data[len(got):len(got) + len(chunk)]:
                        wrong.append(len(got))
                        break
                    got.extend(chunk)
                    if len(got) >= 4 * MiB:
                        started.set()
                    # A reader slower than the kill, however slow the main
                    # thread: 28 MiB more take over 5 s, readahead going on
                    # all the while.
                    time.sleep(0.2 if started.is_set() else 0.02)
            except OSError:
                pass   # the daemon died under it: ENOTCONN or EIO
            started.set()

        t = threading.Thread(target=reader)
        t.start()
        assert started.wait(60)
        b.mounts.crash(b.mp)   # readahead may be in the middle of a window
        t.join(60)
        assert not t.is_alive()
        assert not wrong, "wrong data at offset %d" % wrong[0]
        assert 4 * MiB <= len(got) < len(data), "the kill did not come mid-read: nothing tested"
        lazy_unmount(b.mp)
        assert not is_mounted(b.mp)
        b.mount()
        # Half-written cache files are gone (the store's open cleans them)...
        tmp = b.vol.dir / "blocks" / "tmp"
        assert tmp.is_dir() and os.listdir(tmp) == [], os.listdir(tmp)[:5]
        # ...and whatever else the killed daemon left in the cache is whole
        # and right, or found out and fetched again.
        assert read_file(b.mp / "big.bin") == data
    finally:
        finish(devices)

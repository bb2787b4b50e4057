"""Several processes at once: two writers and a reader, on different files and
on one file.  The writers are separate processes (separate opens, separate
page-cache users), so the daemon sees truly concurrent requests."""
import os
import random
import subprocess
import sys

from helpers import MiB, TIME_SCALE, TIMEOUT, assert_same, write_file

KiB = 1024
PIECE = 64 * KiB

# One script, three roles.  Data is random.Random(seed).randbytes(size), so the
# test computes the same bytes without passing them around.
WORKER = r"""
import hashlib, os, random, sys, time
role, path = sys.argv[1], sys.argv[2]
PIECE = 64 * 1024

def expected(seed, size):
    return random.Random(seed).randbytes(size)

if role == "write":          # write OFFSET SIZE SEED
    off, size, seed = map(int, sys.argv[3:6])
    data = expected(seed, size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    for i in range(0, size, PIECE):
        os.pwrite(fd, data[i:i + PIECE], off + i)
    os.fsync(fd)
    os.close(fd)
elif role == "append":       # append TAG COUNT
    tag, count = sys.argv[3], int(sys.argv[4])
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for i in range(count):
        rec = ("%s %05d " % (tag, i)).encode()
        os.write(fd, rec + b"." * (99 - len(rec)) + b"\n")
    os.close(fd)
elif role == "read-same":    # read-same STOPFILE SHA256: whole file, again and again
    stop, want = sys.argv[3], sys.argv[4]
    n = 0
    while True:
        stopping = os.path.exists(stop)
        with open(path, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        n += 1
        if got != want:
            sys.exit("read %d of %s gave sha256 %s, expected %s" % (n, path, got, want))
        if stopping:
            break
elif role == "read-growing": # read-growing STOPFILE LAYOUT: bytes are 0 or the final ones
    stop = sys.argv[3]
    layout = [tuple(map(int, x.split(":"))) for x in sys.argv[4].split(",")]
    final = bytearray()
    for off, size, seed in layout:
        final[len(final):off] = bytes(off - len(final))
        final[off:off + size] = expected(seed, size)
    final = bytes(final)
    zero = bytes(4096)
    while True:
        stopping = os.path.exists(stop)
        with open(path, "rb") as f:
            got = f.read()
        if len(got) > len(final):
            sys.exit("read %d bytes, more than the %d ever written" % (len(got), len(final)))
        for p in range(0, len(got), 4096):
            page, good = got[p:p + 4096], final[p:p + 4096]
            if page == good[:len(page)] or page == zero[:len(page)]:
                continue
            for i, b in enumerate(page):   # a page being written: byte by byte
                if b != 0 and b != good[i]:
                    sys.exit("offset %d holds %d: neither 0 nor the byte written there"
                             % (p + i, b))
        if stopping:
            break
"""


def start(role, *args):
    return subprocess.Popen([sys.executable, "-c", WORKER, role] + [str(a) for a in args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(procs):
    """Wait for every process (TIMEOUT each); assert each exited 0."""
    failures = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=TIMEOUT * TIME_SCALE)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            failures.append("%s: timed out; %s" % (p.args[3], err.strip()))
            continue
        if p.returncode != 0:
            failures.append("%s: exit %d; %s" % (p.args[3], p.returncode, err.strip()[-2000:]))
    assert not failures, "\n".join(failures)


def expected(seed, size):
    return random.Random(seed).randbytes(size)


def test_two_writers_and_a_reader_on_different_files(mounted, remount, tmp_path):
    import hashlib
    stable = expected(1, 4 * MiB)
    write_file(mounted / "stable", stable)
    stop = tmp_path / "stop"
    reader = start("read-same", mounted / "stable", stop, hashlib.sha256(stable).hexdigest())
    writers = [start("write", mounted / "w1", 0, 8 * MiB, 2),
               start("write", mounted / "w2", 0, 8 * MiB, 3)]
    try:
        finish(writers)
    finally:
        stop.touch()
        finish([reader])
    for name, seed in (("w1", 2), ("w2", 3)):
        assert_same(mounted / name, expected(seed, 8 * MiB))
    remount(mounted)
    assert_same(mounted / "stable", stable)
    for name, seed in (("w1", 2), ("w2", 3)):
        assert_same(mounted / name, expected(seed, 8 * MiB))


def test_two_writers_on_disjoint_regions_of_one_file_and_a_reader(mounted, remount, tmp_path):
    p = mounted / "shared"
    write_file(p, b"")
    layout = [(0, 4 * MiB, 4), (4 * MiB, 4 * MiB, 5)]
    stop = tmp_path / "stop"
    reader = start("read-growing", p, stop, ",".join("%d:%d:%d" % x for x in layout))
    writers = [start("write", p, off, size, seed) for off, size, seed in layout]
    try:
        finish(writers)
    finally:
        stop.touch()
        finish([reader])
    want = expected(4, 4 * MiB) + expected(5, 4 * MiB)
    assert_same(p, want)
    remount(mounted)
    assert_same(p, want)


def test_two_writers_on_the_same_region_leave_one_of_their_pieces(mounted, remount):
    p = mounted / "contested"
    write_file(p, b"")
    writers = [start("write", p, 0, 2 * MiB, 6), start("write", p, 0, 2 * MiB, 7)]
    finish(writers)
    a, b = expected(6, 2 * MiB), expected(7, 2 * MiB)

    def check_pieces(got):
        assert len(got) == 2 * MiB
        for i in range(0, len(got), PIECE):
            assert got[i:i + PIECE] in (a[i:i + PIECE], b[i:i + PIECE]), \
                "64 KiB piece at %d is from neither writer" % i

    with open(p, "rb") as f:
        before = f.read()
    check_pieces(before)
    remount(mounted)
    assert_same(p, before)


def test_two_appending_processes_lose_no_records(mounted, remount):
    p = mounted / "journal.log"
    write_file(p, b"")
    finish([start("append", p, "A", 300), start("append", p, "B", 300)])

    def check_records(data):
        assert len(data) == 600 * 100
        recs = [data[i:i + 100] for i in range(0, len(data), 100)]
        for tag in (b"A", b"B"):
            mine = [r for r in recs if r.startswith(tag + b" ")]
            assert [int(r.split()[1]) for r in mine] == list(range(300)), tag
            assert all(r.endswith(b".\n") for r in mine)

    with open(p, "rb") as f:
        check_records(f.read())
    remount(mounted)
    with open(p, "rb") as f:
        check_records(f.read())


def test_four_processes_creating_files_in_one_directory(mounted, remount):
    script = ("import os, sys\n"
              "d, tag = sys.argv[1], sys.argv[2]\n"
              "for i in range(100):\n"
              "    with open(os.path.join(d, '%s-%03d' % (tag, i)), 'wb') as f:\n"
              "        f.write(b'%s %d' % (tag.encode(), i))\n"
              "    if i % 10 == 9:\n"
              "        os.listdir(d)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(mounted), tag],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for tag in "abcd"]
    for p in procs:
        out, err = p.communicate(timeout=TIMEOUT * TIME_SCALE)
        assert p.returncode == 0, err
    want = sorted("%s-%03d" % (t, i) for t in "abcd" for i in range(100))
    assert sorted(os.listdir(mounted)) == want
    remount(mounted)
    assert sorted(os.listdir(mounted)) == want
    for t in "abcd":
        assert_same(mounted / ("%s-042" % t), b"%s 42" % t.encode())


def test_sync_during_writes_keeps_every_write(mounted, remount, mounts, volume):
    p = mounted / "busy"
    writer = start("write", p, 0, 16 * MiB, 8)
    syncs = 0
    while (writer.poll() is None or syncs < 3) and syncs < 50:
        r = mounts.pc("sync", mounted)
        assert r.returncode == 0, r.stderr
        syncs += 1
    finish([writer])
    assert_same(p, expected(8, 16 * MiB))
    remount(mounted)
    assert_same(p, expected(8, 16 * MiB))
    assert "busy" in volume.git("ls-tree", "--name-only", "main").stdout.split()

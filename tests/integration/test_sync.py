"""Several devices on one cloud (a local directory here, as `init` makes by
default): edits travel through `peercling sync`, edits made apart both
survive, the cloud holds only ciphertext, a wrong key is refused."""
import errno
import os
import random
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Mounts, Peercling
from helpers import TIME_SCALE, MiB, Volume, assert_same, check, read_file, read_until_error, run, \
    wait_for, write_file


class Device:
    def __init__(self, root, name):
        root.mkdir()
        self.pc = Peercling(root)
        self.mounts = Mounts(self.pc)
        self.name = name
        self.mp = root / "mnt"
        self.mp.mkdir()
        self.vol = Volume(self.pc, "vol")

    def mount(self):
        self.mounts.mount(self.vol, self.mp)

    def sync(self):
        return check(self.pc("sync", self.mp)).stdout


@pytest.fixture
def devices(tmp_path):
    made = []

    def make(n, cloud=None):
        first = Device(tmp_path / "dev0", "dev0")
        made.append(first)
        args = ["init", "vol"] + (["--cloud", cloud] if cloud else [])
        check(first.pc(*args))
        url = first.vol.status()["cloud"]
        key = check(first.pc("key", "vol")).stdout.strip()
        for i in range(1, n):
            d = Device(tmp_path / ("dev%d" % i), "dev%d" % i)
            made.append(d)
            check(d.pc("clone", url, "vol", "--key", key))
        for d in made:
            # Every sync of these tests is an explicit one: a periodic one
            # in between would change what the next one has to do.
            cfg = d.vol.dir / "config"
            cfg.write_text(cfg.read_text() + "[sync]\n\tinterval = 0\n")
            d.mount()
        return made, url, key

    yield make
    for d in made:
        for p in d.mounts.cleanup():
            print("teardown:", p)


def test_an_edit_on_one_device_appears_on_the_others_after_sync(devices):
    (a, b, c), url, key = devices(3)
    write_file(a.mp / "notes.txt", b"written on a\n")
    os.makedirs(a.mp / "dir" / "sub")
    write_file(a.mp / "dir" / "sub" / "data.bin", os.urandom(700 * 1024))
    a.sync()
    b.sync()
    c.sync()
    for d in (b, c):
        assert_same(d.mp / "notes.txt", b"written on a\n")
        assert read_file(d.mp / "dir" / "sub" / "data.bin") == read_file(a.mp / "dir" / "sub" / "data.bin")


def test_the_kernel_caches_follow_a_merge(devices):
    """The kernel keeps names and attributes for a minute; a merge must
    tell it what changed, right away, not when the cache runs out."""
    (a, b), _, _ = devices(2)
    os.makedirs(a.mp / "dir")
    write_file(a.mp / "dir" / "grows", b"short\n")
    write_file(a.mp / "dir" / "goes", b"to be deleted\n")
    a.sync()
    b.sync()
    # b looks at everything, so that the kernel caches it all.
    before_dir = os.stat(b.mp / "dir")
    assert os.stat(b.mp / "dir" / "grows").st_size == 6
    assert os.stat(b.mp / "dir" / "goes").st_size == 14
    assert not os.path.exists(b.mp / "dir" / "new")
    assert not os.path.exists(b.mp / "fresh")
    write_file(a.mp / "dir" / "grows", b"much longer than before\n")
    os.unlink(a.mp / "dir" / "goes")
    os.makedirs(a.mp / "dir" / "new" / "deeper")
    write_file(a.mp / "dir" / "new" / "deeper" / "f", b"deep\n")
    os.makedirs(a.mp / "fresh")
    a.sync()
    b.sync()
    assert os.stat(b.mp / "dir" / "grows").st_size == 24
    assert_same(b.mp / "dir" / "grows", b"much longer than before\n")
    assert not os.path.exists(b.mp / "dir" / "goes")
    assert_same(b.mp / "dir" / "new" / "deeper" / "f", b"deep\n")
    assert os.path.isdir(b.mp / "fresh")
    after_dir = os.stat(b.mp / "dir")
    assert after_dir.st_nlink == before_dir.st_nlink + 1, (before_dir, after_dir)
    assert sorted(os.listdir(b.mp / "dir")) == ["grows", "new"]


def test_partial_reads_fetch_only_the_blocks_they_touch(devices):
    (a, b), _, _ = devices(2)
    data = os.urandom(64 * MiB)
    write_file(a.mp / "big.bin", data)
    a.sync()
    b.sync()
    before = b.vol.status()["cache"]["blocks"]
    with open(b.mp / "big.bin", "rb") as f:
        f.seek(40 * MiB + 12345)
        assert f.read(4096) == data[40 * MiB + 12345:40 * MiB + 12345 + 4096]
        f.seek(7 * MiB)
        assert f.read(100) == data[7 * MiB:7 * MiB + 100]
    fetched = b.vol.status()["cache"]["blocks"] - before
    # About 900 blocks in the file; two small reads, each widened by the
    # kernel's readahead to at most a few blocks, fetch a handful.
    assert 2 <= fetched <= 12, fetched
    assert read_file(b.mp / "big.bin") == data   # and the rest on demand
    assert b.vol.status()["cache"]["blocks"] - before >= 800


def scattered_reads(dev, data, name):
    """200 random 4 KiB reads of name; returns a function that says how
    many blocks the device has fetched since it started."""
    cached = lambda: dev.vol.status()["cache"]["blocks"]  # noqa: E731
    before = cached()
    rng = random.Random(7)
    with open(dev.mp / name, "rb", buffering=0) as f:
        for _ in range(200):
            off = rng.randrange(0, len(data) - 4096) & ~4095
            f.seek(off)
            assert f.read(4096) == data[off:off + 4096], off
    return lambda: cached() - before


def test_a_file_read_all_over_is_fetched_whole_in_the_background(devices):
    """Many scattered reads that miss (a database, fio's random reads): the
    rest of the file comes in the background, so later reads find it here;
    not for a file bigger than a quarter of the cache limit."""
    (a, b, c), _, _ = devices(3)
    data = os.urandom(32 * MiB)
    write_file(a.mp / "db.bin", data)
    a.sync()
    total = a.vol.status()["cache"]["blocks"]   # the file's, a holds no other
    b.sync()
    fetched = scattered_reads(b, data, "db.bin")
    # 200 reads alone bring about 160-220 of the file's ~450 blocks (each
    # read its own, the kernel's readahead a few more); the rest comes with
    # no more reads.
    assert wait_for(lambda: fetched() >= total, 30), (fetched(), total)
    assert_same(b.mp / "db.bin", data)

    c.mounts.umount(c.mp)
    check(run(["git", "config", "--file", str(c.vol.dir / "config"), "cache.limit", "64m"]))
    c.mount()
    c.sync()
    fetched = scattered_reads(c, data, "db.bin")
    # Were it fetched whole, the rest would be here well within this (32 MiB
    # from a cloud on this disk).
    time.sleep(2 * TIME_SCALE)
    assert fetched() < 0.7 * total, (fetched(), total)


def cloud_files(url):
    root = Path(url[len("file://"):])
    return {p: p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_a_small_change_to_a_big_file_sends_a_delta_of_its_manifest(devices):
    """A 4 KiB write into a big file changes one or two blocks and the
    file's manifest (36 bytes per block); the manifest goes up as a delta
    against its previous version, so the objects of the sync are a few
    hundred bytes, not the whole manifest.  Other devices rebuild every
    version, also through chains of deltas longer than the limit after
    which a version goes up whole again."""
    (a, b, c), url, _ = devices(3)
    data = bytearray(os.urandom(64 * MiB))
    write_file(a.mp / "big.bin", bytes(data))
    a.sync()
    b.sync()
    manifest = len(a.vol.git("cat-file", "blob", "HEAD:big.bin").stdout)  # ~36 KB
    before = cloud_files(url)
    off = 32 * MiB + 4096
    with open(a.mp / "big.bin", "r+b") as f:
        f.seek(off)
        f.write(os.urandom(4096))
    a.sync()
    new = {p: n for p, n in cloud_files(url).items() if p not in before}
    objects = sum(n for p, n in new.items() if "objects" in p.parts)
    assert manifest > 30000, manifest
    assert objects < 3000, (objects, sorted((str(p), n) for p, n in new.items()))
    # b has the previous version: one delta on top of it.
    b.sync()
    with open(a.mp / "big.bin", "rb") as f:
        data = bytearray(f.read())
    assert_same(b.mp / "big.bin", bytes(data))
    # 20 more small changes: past the depth limit of 16, one goes up whole.
    for i in range(20):
        pos = (i * 3 + 1) * MiB
        with open(a.mp / "big.bin", "r+b") as f:
            f.seek(pos)
            f.write(b"change %d" % i)
        data[pos:pos + len(b"change %d" % i)] = b"change %d" % i
        a.sync()
    # Without its record of depths a device never guesses one: the next
    # version goes up whole.
    a.mounts.umount(a.mp)
    os.unlink(a.vol.dir / "delta-depth")
    a.mount()
    before = cloud_files(url)
    with open(a.mp / "big.bin", "r+b") as f:
        f.seek(5 * MiB)
        f.write(b"after the loss")
    data[5 * MiB:5 * MiB + 14] = b"after the loss"
    a.sync()
    new = {p: n for p, n in cloud_files(url).items() if p not in before}
    assert sum(n for p, n in new.items() if "objects" in p.parts) > manifest
    # c saw none of it: it rebuilds the newest version through the chain
    # (bases fetched as needed), and every older one from history.
    c.sync()
    assert_same(c.mp / "big.bin", bytes(data))
    assert c.vol.git("fsck", "--no-dangling").stdout == ""


def test_a_version_restored_is_not_sent_again_as_a_delta(devices):
    """chmod +x then -x gives back the very manifest of two syncs before,
    which the cloud holds already (whole): sent again as a delta against
    the version between, it would become the base of its own base."""
    (a, b), _, _ = devices(2)
    data = os.urandom(16 * MiB)
    write_file(a.mp / "tool.bin", data)
    a.sync()
    os.chmod(a.mp / "tool.bin", 0o755)
    a.sync()
    os.chmod(a.mp / "tool.bin", 0o644)
    out = a.sync()
    # The commit and the root tree go up; the manifest is in the cloud
    # already, so it is neither sent nor counted.
    assert re.search(r"\b2 objects up\b", out), out
    b.sync()   # b has none of the three versions
    assert_same(b.mp / "tool.bin", data)
    assert os.stat(b.mp / "tool.bin").st_mode & 0o777 == 0o644
    assert b.vol.git("fsck", "--no-dangling").stdout == ""


def test_edits_made_apart_on_two_devices_both_survive(devices):
    (a, b), url, key = devices(2)
    write_file(a.mp / "shared.txt", b"base\n")
    a.sync()
    b.sync()
    write_file(a.mp / "shared.txt", b"base\nfrom a\n")
    write_file(b.mp / "shared.txt", b"base\nfrom b\n")
    write_file(b.mp / "only-b.txt", b"b alone\n")
    b.sync()
    a.sync()
    b.sync()
    names_a = sorted(os.listdir(a.mp))
    names_b = sorted(os.listdir(b.mp))
    assert names_a == names_b, (names_a, names_b)
    conflicts = [n for n in names_a if "conflict from" in n]
    assert len(conflicts) == 1, names_a
    assert re.match(r"shared \(conflict from [0-9a-f]{8} \d{4}-\d{2}-\d{2}\)\.txt$", conflicts[0])
    versions = {read_file(a.mp / "shared.txt"), read_file(a.mp / conflicts[0])}
    assert versions == {b"base\nfrom a\n", b"base\nfrom b\n"}
    assert_same(a.mp / "only-b.txt", b"b alone\n")
    # Converged: the same commit on both.
    assert a.vol.status()["head"] == b.vol.status()["head"]


def test_a_deletion_on_one_side_and_an_edit_on_the_other_keeps_the_edit(devices):
    (a, b), url, key = devices(2)
    write_file(a.mp / "f", b"v1\n")
    a.sync()
    b.sync()
    os.unlink(a.mp / "f")
    write_file(b.mp / "f", b"v2 edited\n")
    a.sync()
    b.sync()
    a.sync()
    assert_same(a.mp / "f", b"v2 edited\n")


def test_the_cloud_holds_neither_contents_nor_names(devices, tmp_path):
    (a,), url, key = devices(1)
    marker = b"MARKER-7f3a-contents"
    write_file(a.mp / "secret-name-4c1d.txt", marker * 1000)
    write_file(a.mp / "small-secret-name.txt", marker)
    a.sync()
    cloud = Path(url[len("file://"):])
    files = [p for p in cloud.rglob("*") if p.is_file()]
    assert len(files) > 3
    for p in files:
        assert b"secret-name" not in str(p).encode()
        data = p.read_bytes()
        assert marker not in data, p
        assert b"secret-name" not in data, p


def test_clone_with_a_wrong_key_is_refused_clearly(devices, tmp_path):
    (a,), url, key = devices(1)
    other = Device(tmp_path / "other", "other")
    wrong = ("0" if key[0] != "0" else "1") + key[1:]
    p = other.pc("clone", url, "vol", "--key", wrong)
    assert p.returncode == 1
    assert "wrong key" in p.stderr
    assert not (other.pc.home / "vol").exists(), "a failed clone must leave nothing behind"


def test_clone_of_a_cloud_without_a_volume_says_so(tmp_path):
    d = Device(tmp_path / "d", "d")
    empty = tmp_path / "empty-cloud"
    empty.mkdir()
    p = d.pc("clone", "file://%s" % empty, "vol", "--key", "ab" * 32)
    assert p.returncode == 1
    assert "holds no peercling volume" in p.stderr


def test_a_volume_that_needs_a_newer_peercling_is_refused_clearly(tmp_path):
    a = Device(tmp_path / "a", "a")
    cloud = tmp_path / "cloud"
    check(a.pc("init", "vol", "--cloud", "file://%s" % cloud, "--no-encrypt"))
    key = check(a.pc("key", "vol")).stdout.strip()
    record = cloud / "volume"
    text = record.read_text()
    assert "\nrequires deltas\n" in text, text
    # What a later version would write once it uses something new.
    record.write_text(text + "requires teleportation\n")

    b = Device(tmp_path / "b", "b")
    p = b.pc("clone", "file://%s" % cloud, "vol", "--key", key)
    assert p.returncode == 1
    assert "needs a newer peercling" in p.stderr and "'teleportation'" in p.stderr, p.stderr
    assert not (b.pc.home / "vol").exists(), "a failed clone must leave nothing behind"

    # A device that has the volume already keeps working locally and
    # uploads nothing there.
    def heads():
        d = cloud / "heads"
        return sorted((p.name, p.read_bytes()) for p in d.iterdir()) if d.exists() else []
    before = heads()
    try:
        a.mount()
        write_file(a.mp / "f", b"made here\n")
        p = a.pc("sync", a.mp)
        assert p.returncode != 0
        assert "needs a newer peercling" in p.stderr, p.stderr
        assert heads() == before
        assert_same(a.mp / "f", b"made here\n")
    finally:
        for m in a.mounts.cleanup():
            print("teardown:", m)
    assert heads() == before
    assert "needs a newer peercling" in (a.vol.dir / "log").read_text(errors="replace")


def test_unmounted_volumes_sync_by_name(tmp_path):
    a = Device(tmp_path / "a", "a")
    check(a.pc("init", "vol"))
    url = a.vol.status()["cloud"]
    key = check(a.pc("key", "vol")).stdout.strip()
    a.mount()
    write_file(a.mp / "f", b"hello\n")
    check(a.pc("umount", a.mp))   # the final sync uploads
    b = Device(tmp_path / "b", "b")
    check(b.pc("clone", url, "vol", "--key", key))
    check(b.pc("sync", "vol"))
    b.mount()
    try:
        assert_same(b.mp / "f", b"hello\n")
    finally:
        b.mounts.cleanup()
        a.mounts.cleanup()


def test_a_volume_without_a_reachable_cloud_still_mounts_and_works(tmp_path):
    a = Device(tmp_path / "a", "a")
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    check(a.pc("init", "vol", "--cloud", "file://%s" % cloud))
    os.rename(cloud, tmp_path / "cloud-gone")   # the cloud disappears
    a.mount()
    try:
        write_file(a.mp / "offline.txt", b"written offline\n")
        p = a.pc("sync", a.mp)
        assert p.returncode == 1
        st = a.vol.status()
        assert st["sync"]["last_error"]
        assert st["sync"]["reachable"] is False
        assert st["commits"] >= 1   # offline, sync still committed
        assert "UNREACHABLE" in check(a.pc("status", "vol")).stdout
        os.rename(tmp_path / "cloud-gone", cloud)   # back
        check(a.pc("sync", a.mp))
        assert a.vol.status()["sync"]["last_error"] is None
    finally:
        a.mounts.cleanup()


# ---- the same over a real WebDAV server (Apache mod_dav) --------------------

from webdav_server import webdav  # noqa: E402,F401  (module-scoped fixture)


def dav_devices(tmp_path, webdav, n, path):
    """n devices on webdav://.../path, credentials from each one's ~/.netrc."""
    made = []
    for i in range(n):
        d = Device(tmp_path / ("dav%d" % i), "dav%d" % i)
        netrc = Path(d.pc.env["HOME"]) / ".netrc"
        netrc.write_text("machine 127.0.0.1 login %s password %s\n" % (webdav.user, webdav.password))
        netrc.chmod(0o600)
        made.append(d)
    url = webdav.url(path)
    check(made[0].pc("init", "vol", "--cloud", url))
    key = check(made[0].pc("key", "vol")).stdout.strip()
    for d in made[1:]:
        check(d.pc("clone", url, "vol", "--key", key))
    for d in made:
        d.mount()
    return made


def test_two_devices_converge_over_webdav_with_edits_made_apart(tmp_path, webdav):
    a, b = dav_devices(tmp_path, webdav, 2, "vol-converge")
    try:
        write_file(a.mp / "doc.txt", b"one\n")
        data = os.urandom(1 << 20)
        write_file(a.mp / "blob.bin", data)
        a.sync()
        b.sync()
        assert read_file(b.mp / "blob.bin") == data   # fetched lazily from WebDAV
        write_file(a.mp / "doc.txt", b"one\nby a\n")
        write_file(b.mp / "doc.txt", b"one\nby b\n")
        a.sync()
        b.sync()
        a.sync()
        assert sorted(os.listdir(a.mp)) == sorted(os.listdir(b.mp))
        assert a.vol.status()["head"] == b.vol.status()["head"]
        texts = {read_file(a.mp / n) for n in os.listdir(a.mp) if n.startswith("doc")}
        assert texts == {b"one\nby a\n", b"one\nby b\n"}
    finally:
        for d in (a, b):
            d.mounts.cleanup()


def test_a_device_offline_while_the_server_is_down_catches_up(tmp_path, webdav):
    a, b = dav_devices(tmp_path, webdav, 2, "vol-offline")
    try:
        write_file(a.mp / "before.txt", b"before\n")
        a.sync()
        b.sync()
        webdav.stop()
        try:
            write_file(a.mp / "offline-a.txt", b"written while the cloud was down\n")
            write_file(b.mp / "offline-b.txt", b"b too\n")
            assert a.pc("sync", a.mp).returncode == 1
            st = a.vol.status()
            assert st["sync"]["reachable"] is False
            assert st["sync"]["unreachable_since"]
            assert_same(a.mp / "before.txt", b"before\n")   # cached data still reads
        finally:
            webdav.start()
        a.sync()
        b.sync()
        a.sync()
        for d in (a, b):
            assert_same(d.mp / "offline-a.txt", b"written while the cloud was down\n")
            assert_same(d.mp / "offline-b.txt", b"b too\n")
        assert a.vol.status()["sync"]["reachable"] is True
    finally:
        for d in (a, b):
            d.mounts.cleanup()


def test_wrong_webdav_credentials_fail_init_clearly(tmp_path, webdav):
    d = Device(tmp_path / "bad", "bad")
    netrc = Path(d.pc.env["HOME"]) / ".netrc"
    netrc.write_text("machine 127.0.0.1 login %s password wrong\n" % webdav.user)
    netrc.chmod(0o600)
    p = d.pc("init", "vol", "--cloud", webdav.url("vol-badcreds"))
    assert p.returncode == 1
    assert "credentials" in p.stderr
    assert not (d.pc.home / "vol").exists()


# ---- the same over a real S3 server (Ceph radosgw) --------------------------

from s3_server import s3  # noqa: E402,F401  (session-scoped fixture)


def test_three_devices_converge_over_s3_and_the_bucket_holds_only_ciphertext(tmp_path, s3):
    s3.create_bucket("pcsync")
    devs = []
    for i in range(3):
        d = Device(tmp_path / ("s3dev%d" % i), "s3dev%d" % i)
        d.pc.env.update(s3.env({}))
        devs.append(d)
    a, b, c = devs
    try:
        check(a.pc("init", "vol", "--cloud", "s3://pcsync/team"))
        key = check(a.pc("key", "vol")).stdout.strip()
        for d in (b, c):
            check(d.pc("clone", "s3://pcsync/team", "vol", "--key", key))
        for d in devs:
            d.mount()
        marker = b"S3-MARKER-91e2"
        write_file(a.mp / "from-a.txt", marker * 100)
        write_file(b.mp / "from-b.txt", b"b\n")
        write_file(c.mp / "from-c.txt", b"c\n")
        for _ in range(2):
            for d in devs:
                d.sync()
        for d in devs:
            assert sorted(os.listdir(d.mp)) == ["from-a.txt", "from-b.txt", "from-c.txt"]
            assert_same(d.mp / "from-a.txt", marker * 100)
        # Agreed on one commit, and one more round changes nothing (quiet).
        heads = [d.vol.status()["head"] for d in devs]
        assert len(set(heads)) == 1, heads
        for d in devs:
            d.sync()
        assert [d.vol.status()["head"] for d in devs] == heads
        # Everything in the bucket is sealed: no marker, no file name.
        listing = s3.s3_curl("GET", "/pcsync?list-type=2&prefix=team%2F").stdout
        keys = re.findall(r"<Key>([^<]+)</Key>", listing)
        assert len(keys) > 5
        for k in keys:
            assert "from-" not in k
            body = subprocess.run(
                ["curl", "-sS", "--max-time", "20", "--aws-sigv4", "aws:amz:%s:s3" % s3.region,
                 "-u", "%s:%s" % (s3.access_key, s3.secret_key),
                 "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                 s3.endpoint + "/pcsync/" + k], capture_output=True, timeout=30).stdout
            assert body and marker not in body
    finally:
        for d in devs:
            d.mounts.cleanup()


def test_wrong_s3_secret_fails_init_clearly(tmp_path, s3):
    d = Device(tmp_path / "s3bad", "s3bad")
    env = s3.env({})
    env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    d.pc.env.update(env)
    p = d.pc("init", "vol", "--cloud", "s3://pcsync/bad")
    assert p.returncode == 1
    assert "credentials" in p.stderr


def test_pinned_files_read_offline_and_unpinned_uncached_ones_fail_fast(tmp_path):
    a = Device(tmp_path / "a", "a")
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    check(a.pc("init", "vol", "--cloud", "file://%s" % cloud))
    key = check(a.pc("key", "vol")).stdout.strip()
    a.mount()
    b = Device(tmp_path / "b", "b")
    try:
        os.makedirs(a.mp / "keep")
        kept, other = os.urandom(3 << 20), os.urandom(2 << 20)
        write_file(a.mp / "keep" / "kept.bin", kept)
        write_file(a.mp / "other.bin", other)
        a.sync()
        check(b.pc("clone", "file://%s" % cloud, "vol", "--key", key))
        b.mount()
        assert b.vol.status()["cache"]["bytes"] == 0   # contents come when read
        out = check(b.pc("pin", b.mp / "keep")).stdout
        assert "fetched" in out
        st = b.vol.status()
        assert st["cache"]["pinned_bytes"] >= len(kept)
        os.rename(cloud, tmp_path / "cloud-away")      # offline from here on
        assert read_file(b.mp / "keep" / "kept.bin") == kept
        t0 = __import__("time").monotonic()
        with pytest.raises(OSError) as e:
            read_file(b.mp / "other.bin")
        assert e.value.errno == __import__("errno").EIO
        assert __import__("time").monotonic() - t0 < 20
        os.rename(tmp_path / "cloud-away", cloud)
        assert read_file(b.mp / "other.bin") == other   # back online: fetched now
        check(b.pc("unpin", b.mp / "keep"))
        assert b.vol.status()["cache"]["pinned_bytes"] == 0
        p = b.pc("unpin", b.mp / "keep")
        assert p.returncode == 1 and "not pinned" in p.stderr
    finally:
        b.mounts.cleanup()
        a.mounts.cleanup()


# ---- faults between the device and the cloud --------------------------------

from faultproxy import FaultProxy  # noqa: E402


@pytest.fixture
def faulty(tmp_path, webdav):
    """A fault proxy in front of the WebDAV server, and devices a and b,
    each with the server's login in its ~/.netrc; all undone at the end."""
    proxy = FaultProxy(webdav.port).start()
    made = []
    for name in ("a", "b"):
        d = Device(tmp_path / name, name)
        netrc = Path(d.pc.env["HOME"]) / ".netrc"
        netrc.write_text("machine 127.0.0.1 login %s password %s\n"
                         % (webdav.user, webdav.password))
        netrc.chmod(0o600)
        made.append(d)
    yield proxy, made[0], made[1]
    for d in made:
        d.mounts.cleanup()
    proxy.close()


@pytest.mark.parametrize("mode", ["refuse", "http500", "truncate", "stall"])
def test_faults_during_sync_lose_nothing_and_recover(faulty, webdav, mode):
    """Device a talks to WebDAV through a fault proxy, device b directly.
    While the proxy misbehaves, a's syncs fail (with a message), its data
    stays readable and nothing corrupt is taken in; once the proxy passes
    again, a catches up and b sees every edit."""
    proxy, a, b = faulty
    path = "vol-fault-" + mode
    check(a.pc("init", "vol", "--cloud", webdav.url(path, port=proxy.port)))
    # Faults are noticed fast: short timeouts, few retries.
    cfg = a.pc.home / "vol" / "config"
    cfg.write_text(cfg.read_text() + "[cloud]\n\ttimeout = 3000\n\tretries = 1\n")
    key = check(a.pc("key", "vol")).stdout.strip()
    check(b.pc("clone", webdav.url(path), "vol", "--key", key))
    a.mount()
    b.mount()
    first = os.urandom(600 * 1024)
    write_file(a.mp / "first.bin", first)
    a.sync()
    proxy.mode = mode
    second = os.urandom(900 * 1024)
    write_file(a.mp / "second.bin", second)
    p = a.pc("sync", a.mp, timeout=90)
    assert p.returncode == 1, p.stdout
    assert p.stderr.strip()
    assert read_file(a.mp / "first.bin") == first
    assert read_file(a.mp / "second.bin") == second
    assert a.vol.status()["sync"]["last_error"]
    proxy.mode = "pass"
    a.sync()
    b.sync()
    assert read_file(b.mp / "first.bin") == first
    assert read_file(b.mp / "second.bin") == second
    assert a.vol.daemon_pid()   # never crashed


@pytest.mark.parametrize("mode", ["refuse", "http500", "truncate", "stall"])
def test_faults_during_a_cold_read_give_eio_never_wrong_bytes(faulty, webdav, mode):
    """Device b reads a file it has never read, through a fault proxy: every
    piece it gets is right, the read fails with EIO in bounded time instead
    of hanging or taking in a damaged window, and once the proxy passes
    again the same read returns the whole file."""
    proxy, a, b = faulty
    path = "vol-readfault-" + mode
    check(a.pc("init", "vol", "--cloud", webdav.url(path)))
    key = check(a.pc("key", "vol")).stdout.strip()
    a.mount()
    data = os.urandom(8 * MiB)
    write_file(a.mp / "big.bin", data)
    a.sync()
    check(b.pc("clone", webdav.url(path, port=proxy.port), "vol", "--key", key))
    cfg = b.pc.home / "vol" / "config"
    cfg.write_text(cfg.read_text() + "[cloud]\n\ttimeout = 3000\n\tretries = 1\n")
    b.mount()
    proxy.mode = mode
    start = time.monotonic()
    _, err = read_until_error(b.mp / "big.bin", data, 256 * 1024)
    assert err.errno == errno.EIO
    assert time.monotonic() - start < 60
    proxy.mode = "pass"
    assert_same(b.mp / "big.bin", data)
    assert b.vol.daemon_pid()   # never crashed


def test_a_merge_replaces_a_file_that_is_being_read(devices):
    """Another device's version of a file arrives while this device has it
    open and is reading it in a loop: no crash, and the new version shows."""
    import threading
    (a, b), url, key = devices(2)
    old = os.urandom(2 << 20)
    write_file(a.mp / "busy.bin", old)
    a.sync()
    b.sync()
    new = os.urandom(2 << 20)
    write_file(a.mp / "busy.bin", new)
    a.sync()
    stop = threading.Event()
    seen = []

    def reader():
        with open(b.mp / "busy.bin", "rb") as f:
            while not stop.is_set():
                f.seek(0)
                seen.append(len(f.read()))
    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(3):
            b.sync()
    finally:
        stop.set()
        t.join(30)
    assert seen and all(n == 2 << 20 for n in seen)
    assert read_file(b.mp / "busy.bin") == new
    assert b.vol.daemon_pid()


def conflict_copy(d, name):
    """The one conflict copy of name in directory d (a Path)."""
    stem, ext = os.path.splitext(name)
    found = [n for n in os.listdir(d)
             if n.startswith(stem + " (conflict from ") and n.endswith(")" + ext)]
    assert len(found) == 1, (name, sorted(os.listdir(d)))
    return found[0]


def test_conflicts_are_listed_and_resolved_the_four_ways(devices, tmp_path):
    """Five paths edited apart on two devices: 'peercling conflicts' lists
    them with their copies; 'resolve' keeps this device's version or the
    other's (wherever the merge put them), takes a copy named by the user,
    keeps both, or takes a third file; the resolutions sync like any
    edit."""
    (a, b), _, _ = devices(2)
    names = ["ours.txt", "theirs.txt", "both.txt", "with.txt", "sub/deep.bin", "gone.txt"]
    os.makedirs(a.mp / "sub")
    for n in names:
        write_file(a.mp / n, b"base\n")
    a.sync()
    b.sync()
    for n in names:
        write_file(a.mp / n, b"from a: %s\n" % n.encode())
        write_file(b.mp / n, b"from b: %s\n" % n.encode())
    b.sync()
    a.sync()
    b.sync()
    out = check(a.pc("conflicts", a.mp)).stdout
    for n in names:
        assert n + "\n" in out, out
    assert "6 paths with conflict copies" in out, out
    sub = check(a.pc("conflicts", a.mp / "sub")).stdout
    assert "sub/deep.bin\n" in sub and "ours.txt" not in sub, sub

    # Ours is a's edit, theirs b's, whichever the merge kept at the path.
    check(a.pc("resolve", a.mp / "ours.txt", "--ours"))
    assert read_file(a.mp / "ours.txt") == b"from a: ours.txt\n"
    assert not [n for n in os.listdir(a.mp) if n.startswith("ours (conflict")]

    copy = conflict_copy(a.mp, "theirs.txt")
    check(a.pc("resolve", a.mp / "theirs.txt", "--theirs"))
    assert read_file(a.mp / "theirs.txt") == b"from b: theirs.txt\n"
    assert not os.path.exists(a.mp / copy)

    copy = conflict_copy(a.mp, "both.txt")
    both = (read_file(a.mp / "both.txt"), read_file(a.mp / copy))
    out = check(a.pc("resolve", a.mp / "both.txt", "--both")).stdout
    renamed = copy.replace(" (conflict from ", " (from ")
    assert renamed in out, out
    assert (read_file(a.mp / "both.txt"), read_file(a.mp / renamed)) == both

    mine = tmp_path / "merged by hand.txt"
    mine.write_bytes(b"merged by hand\n")
    check(a.pc("resolve", "with.txt", "--with", mine, cwd=a.mp))   # relative, from inside
    assert read_file(a.mp / "with.txt") == b"merged by hand\n"

    # The path deleted since: its copy is all that is left, and stays.
    copy = conflict_copy(a.mp, "gone.txt")
    left = read_file(a.mp / copy)
    os.unlink(a.mp / "gone.txt")
    p = a.pc("resolve", a.mp / copy, "--ours")
    assert p.returncode == 1 and "no longer exists" in p.stderr, p.stderr
    check(a.pc("resolve", a.mp / copy, "--theirs"))
    assert read_file(a.mp / "gone.txt") == left

    copy = conflict_copy(a.mp / "sub", "deep.bin")
    theirs = read_file(a.mp / "sub" / copy)
    check(a.pc("resolve", a.mp / "sub" / copy, "--theirs"))
    assert read_file(a.mp / "sub" / "deep.bin") == theirs

    assert check(a.pc("conflicts", a.mp)).stdout == "no conflicts\n"
    # Clear refusals.
    p = a.pc("resolve", a.mp / "ours.txt", "--ours")
    assert p.returncode == 1 and "has no conflict copy" in p.stderr, p.stderr
    p = a.pc("resolve", a.mp / "ours.txt")
    assert p.returncode == 2 and "usage:" in p.stderr, p.stderr
    p = a.pc("resolve", a.mp / "ours.txt", "--ours", "--theirs")
    assert p.returncode == 2, p.stderr
    p = a.pc("conflicts", tmp_path)
    assert p.returncode == 1 and "not" in p.stderr, p.stderr

    # The resolutions are edits like any other: b gets them.
    a.sync()
    b.sync()
    assert sorted(os.listdir(b.mp)) == sorted(os.listdir(a.mp))
    for n in ["ours.txt", "theirs.txt", "both.txt", renamed, "with.txt", "sub/deep.bin",
              "gone.txt"]:
        assert read_file(b.mp / n) == read_file(a.mp / n), n
    assert check(b.pc("conflicts", b.mp)).stdout == "no conflicts\n"


def test_an_earlier_version_is_restored_and_nothing_is_lost(devices):
    """restore puts a file back as of an earlier version (the one before by
    default, or any commit), even a deleted one, as a new commit: what the
    file held is committed first and can be restored in turn; the other
    device gets the restore with its next sync."""
    (a, b), _, _ = devices(2)
    f = a.mp / "doc.txt"
    write_file(f, b"version 1\n")
    a.sync()
    first = a.vol.git("rev-parse", "main").stdout.strip()
    write_file(f, b"version 2\n")
    a.sync()
    write_file(f, b"version 3, never synced\n")
    assert read_file(f) == b"version 3, never synced\n"   # in the kernel's cache
    out = check(a.pc("restore", f)).stdout
    assert out.startswith("doc.txt restored as of "), out
    assert read_file(f) == b"version 2\n"
    # Version 3 was committed before: it comes back too.
    check(a.pc("restore", f))
    assert read_file(f) == b"version 3, never synced\n"
    check(a.pc("restore", f, "--at", first[:10]))
    assert read_file(f) == b"version 1\n"
    out = check(a.pc("restore", f, "--at", first)).stdout
    assert "is already as of" in out, out
    log = a.vol.git("log", "--format=%s", "-n", "3").stdout
    assert log.count("restore doc.txt as of") == 3, log
    # peercling log: the versions of the file, newest first, with the ids
    # restore takes.
    lines = check(a.pc("log", f)).stdout.splitlines()
    assert [ln.split(":")[-1].strip() for ln in lines] == \
        ["changed"] * 5 + ["added"], lines
    assert lines[0].split()[0] in a.vol.git("rev-parse", "main").stdout
    assert lines[-1].split()[0] == first[:12], (lines, first)
    assert len(check(a.pc("log", a.mp, "-n", "2")).stdout.splitlines()) == 2

    os.unlink(f)
    a.sync()
    check(a.pc("restore", f))
    assert read_file(f) == b"version 1\n"

    # A file some program holds open is left alone.
    with open(f, "rb"):
        p = a.pc("restore", f, "--at", first)
    assert p.returncode == 1 and "close it first" in p.stderr, p.stderr
    # A name the history spells escaped, in a directory, executable.
    odd = a.mp / "d" / "%odd.sh"
    os.makedirs(odd.parent)
    write_file(odd, b"#!/bin/sh\necho 1\n")
    os.chmod(odd, 0o755)
    a.sync()
    write_file(odd, b"#!/bin/sh\necho 2\n")
    os.chmod(odd, 0o644)
    a.sync()
    check(a.pc("restore", odd))
    assert read_file(odd) == b"#!/bin/sh\necho 1\n"
    assert os.stat(odd).st_mode & 0o777 == 0o755

    p = a.pc("restore", a.mp / "never.txt")
    assert p.returncode == 1 and "no earlier version" in p.stderr, p.stderr
    p = a.pc("restore", f, "--at", "nosuchversion")
    assert p.returncode == 1 and "no version 'nosuchversion'" in p.stderr, p.stderr
    p = a.pc("restore")
    assert p.returncode == 2 and "usage:" in p.stderr, p.stderr

    a.sync()
    b.sync()
    assert read_file(b.mp / "doc.txt") == b"version 1\n"
    assert read_file(b.mp / "d" / "%odd.sh") == b"#!/bin/sh\necho 1\n"


def test_diff_lists_the_paths_two_versions_differ_in(devices):
    (a,), _, _ = devices(1)
    os.makedirs(a.mp / "d")
    write_file(a.mp / "keep.txt", b"same\n")
    write_file(a.mp / "edit.txt", b"12345")
    write_file(a.mp / "d" / "gone.bin", b"x" * 3000)
    a.sync()
    first = a.vol.git("rev-parse", "main").stdout.strip()
    write_file(a.mp / "edit.txt", b"1234567890")
    os.unlink(a.mp / "d" / "gone.bin")
    write_file(a.mp / "d" / "new.txt", b"new\n")
    os.makedirs(a.mp / "!e")
    a.sync()
    out = check(a.pc("diff", a.mp)).stdout.splitlines()
    assert sorted(out[:-1]) == ["added    !e/", "added    d/new.txt (4 B)",
                                "changed  edit.txt (5 B -> 10 B)",
                                "deleted  d/gone.bin (2.9 KiB)"], out
    assert out[-1].startswith("4 paths changed from %s to " % first[:12]), out
    # A name git would take as a pattern is a name.
    out = check(a.pc("diff", a.mp / "!e")).stdout.splitlines()
    assert out[:-1] == ["added    !e/"], out
    # Under one directory, from the first version on.
    out = check(a.pc("diff", a.mp / "d", "--from", first[:8])).stdout.splitlines()
    assert sorted(out[:-1]) == ["added    d/new.txt (4 B)", "deleted  d/gone.bin (2.9 KiB)"]
    p = a.pc("diff", a.mp, "--from", "nosuchversion")
    assert p.returncode == 1 and "no version 'nosuchversion'" in p.stderr, p.stderr

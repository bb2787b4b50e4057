"""mount.fuse.peercling, the helper that mount(8) and fstab lines use, mounts
a volume with the options mount(8) passes, dropping the ones FUSE refuses."""
import os
import subprocess

import helpers
from helpers import BIN, is_mounted, write_file, assert_same

HELPER = os.path.join(os.path.dirname(BIN), "mount.fuse.peercling")


def run_helper(peercling, *args):
    env = dict(peercling.env, PEERCLING=BIN)
    return subprocess.run([HELPER] + list(args), env=env, capture_output=True, text=True,
                          timeout=30)


def test_mount_helper_mounts_with_fstab_style_options(peercling, volume, mounts, mountpoint):
    assert os.access(HELPER, os.X_OK), "build mount.fuse.peercling first (make)"
    mounts.known[str(mountpoint)] = volume  # so that teardown unmounts it
    p = run_helper(peercling, volume.name, str(mountpoint), "-o", "rw,noauto,user,_netdev,defaults")
    assert p.returncode == 0, p.stderr
    assert is_mounted(mountpoint)
    write_file(mountpoint / "f", b"via fstab\n")
    mounts.remount(mountpoint)
    assert_same(mountpoint / "f", b"via fstab\n")


def test_mount_helper_passes_fuse_options_through(peercling, volume, mounts, mountpoint):
    mounts.known[str(mountpoint)] = volume
    p = run_helper(peercling, volume.name, str(mountpoint), "-o", "noauto,ro")
    assert p.returncode == 0, p.stderr
    assert helpers.mount_entry(mountpoint)["fstype"] == "fuse.peercling"
    assert os.statvfs(mountpoint).f_flag & os.ST_RDONLY


def test_mount_helper_without_a_mountpoint_is_a_usage_error(peercling):
    p = run_helper(peercling, "vol")
    assert p.returncode == 2
    assert "usage" in p.stderr

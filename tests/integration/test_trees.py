"""Whole trees: tar x, cp -a, git and a C compiler working inside the mount."""
import os
import stat

import pytest

from helpers import check, run, write_file

SOURCE_DIRS = ["/usr/include/fuse3", "/usr/include/git2",
               "/usr/share/doc/libfuse3-dev", "/usr/share/doc/libgit2-dev"]


def tree_differences(a, b, dir_modes=True, file_mtimes=True):
    """What differs between trees a and b: names, types, modes, sizes, file
    mtimes (ns), symlink targets.  Content is left to diff -r."""
    diffs = []
    for root, dirs, files in os.walk(a):
        dirs.sort()
        rel = os.path.relpath(root, a)
        other = os.path.normpath(os.path.join(b, rel))
        try:
            theirs = sorted(os.listdir(other))
        except OSError as e:
            diffs.append("%s: %s" % (other, e))
            continue
        if sorted(dirs + files) != theirs:
            diffs.append("%s: entries %s != %s" % (rel, sorted(dirs + files), theirs))
        for name in dirs + files:
            pa, pb = os.path.join(root, name), os.path.join(other, name)
            try:
                sa, sb = os.lstat(pa), os.lstat(pb)
            except OSError as e:
                diffs.append("%s: %s" % (pb, e))
                continue
            r = os.path.normpath(os.path.join(rel, name))
            if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
                diffs.append("%s: type %o != %o" % (r, stat.S_IFMT(sa.st_mode),
                                                    stat.S_IFMT(sb.st_mode)))
                continue
            if stat.S_ISLNK(sa.st_mode):
                if os.readlink(pa) != os.readlink(pb):
                    diffs.append("%s: link %s != %s" % (r, os.readlink(pa), os.readlink(pb)))
                continue
            if (dir_modes or not stat.S_ISDIR(sa.st_mode)) and \
                    stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
                diffs.append("%s: mode %o != %o" % (r, stat.S_IMODE(sa.st_mode),
                                                    stat.S_IMODE(sb.st_mode)))
            if stat.S_ISREG(sa.st_mode):
                if sa.st_size != sb.st_size:
                    diffs.append("%s: size %d != %d" % (r, sa.st_size, sb.st_size))
                if file_mtimes and sa.st_mtime_ns != sb.st_mtime_ns:
                    diffs.append("%s: mtime %d != %d" % (r, sa.st_mtime_ns, sb.st_mtime_ns))
    return diffs


def diff_r(a, b):
    p = run(["diff", "-r", "--no-dereference", a, b])
    assert p.returncode == 0, "diff -r %s %s:\n%s%s" % (a, b, p.stdout[-3000:], p.stderr)


@pytest.fixture
def source_tar(tmp_path):
    """A tar of real source files (headers and docs of libfuse3-dev, libgit2-dev)."""
    present = [d for d in SOURCE_DIRS if os.path.isdir(d)]
    if not any(d.startswith("/usr/include") for d in present):
        pytest.skip("needs /usr/include/fuse3 or /usr/include/git2 (libfuse3-dev, libgit2-dev; "
                    "see .ci/deps)")
    tar = tmp_path / "src.tar"
    check(run(["tar", "-cf", tar, "-C", "/"] + [d.lstrip("/") for d in present]))
    return tar


def test_tar_x_of_a_source_tree_matches_the_original(mounted, remount, source_tar, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    check(run(["tar", "-xf", source_tar, "-C", ref]))
    check(run(["tar", "-xf", source_tar, "-C", mounted]))
    diff_r(ref, mounted)
    assert tree_differences(ref, mounted, dir_modes=True) == []
    remount(mounted)
    diff_r(ref, mounted)
    assert tree_differences(ref, mounted, dir_modes=True) == []


def make_tree(root):
    """A small tree with what cp -a must keep: modes, ns mtimes, symlinks."""
    os.makedirs(root / "src" / "deep" / "er")
    os.mkdir(root / "empty")
    write_file(root / "README", b"readme\n")
    write_file(root / "src" / "main.c", b"int main(void) { return 0; }\n")
    write_file(root / "src" / "blob.bin", os.urandom(300 * 1024))
    write_file(root / "src" / "deep" / "er" / "zero", b"")
    write_file(root / "run.sh", b"#!/bin/sh\necho run\n")
    write_file(root / "secret", b"s3cr3t\n")
    os.chmod(root / "run.sh", 0o755)
    os.chmod(root / "secret", 0o600)
    os.chmod(root / "README", 0o444)
    os.symlink("src/main.c", root / "link-to-main")
    os.symlink("../missing", root / "src" / "dangling")
    t = 1_500_000_000_123_456_789
    for i, p in enumerate(["README", "src/main.c", "src/blob.bin", "src/deep/er/zero",
                           "run.sh", "secret"]):
        os.utime(root / p, ns=(t + i, t + 1000 * i + 7))


def test_cp_a_keeps_content_modes_and_mtimes(mounted, remount, tmp_path):
    src = tmp_path / "tree"
    src.mkdir()
    make_tree(src)
    check(run(["cp", "-a", src, mounted / "tree"]))
    diff_r(src, mounted / "tree")
    assert tree_differences(src, mounted / "tree", dir_modes=False) == []
    remount(mounted)
    diff_r(src, mounted / "tree")
    assert tree_differences(src, mounted / "tree", dir_modes=False) == []


def test_cp_a_keeps_directory_modes(mounted, remount, tmp_path):
    src = tmp_path / "tree"
    for name, mode in (("private", 0o700), ("group", 0o750), ("sticky", 0o1777)):
        os.makedirs(src / name)
        write_file(src / name / "f", name.encode())
        os.chmod(src / name, mode)
    check(run(["cp", "-a", src, mounted / "tree"]))
    assert tree_differences(src, mounted / "tree", dir_modes=True) == []
    remount(mounted)
    assert tree_differences(src, mounted / "tree", dir_modes=True) == []


def git(peercling, cwd, *args):
    return check(peercling.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com",
                                "-c", "init.defaultBranch=main"] + list(args), cwd=cwd))


def test_git_commit_inside_the_mount_passes_fsck_after_remount(mounted, remount, peercling):
    proj = mounted / "proj"
    proj.mkdir()
    git(peercling, proj, "init", "-q")
    write_file(proj / "a.txt", b"alpha\n")
    os.makedirs(proj / "lib" / "sub")
    write_file(proj / "lib" / "sub" / "b.c", b"int b;\n" * 500)
    write_file(proj / "bin.dat", os.urandom(100 * 1024))
    git(peercling, proj, "add", "-A")
    git(peercling, proj, "commit", "-q", "-m", "x")
    git(peercling, proj, "fsck", "--full", "--strict")
    remount(mounted)
    assert git(peercling, proj, "log", "--format=%s").stdout == "x\n"
    git(peercling, proj, "fsck", "--full", "--strict")
    assert git(peercling, proj, "status", "--porcelain").stdout == ""
    # and it keeps working after the remount
    write_file(proj / "a.txt", b"alpha\nbeta\n")
    git(peercling, proj, "commit", "-q", "-a", "-m", "y")
    git(peercling, proj, "fsck", "--full", "--strict")
    remount(mounted)
    assert git(peercling, proj, "log", "--format=%s").stdout == "y\nx\n"
    git(peercling, proj, "fsck", "--full", "--strict")


def test_git_gc_inside_the_mount_keeps_the_repository_valid(mounted, remount, peercling):
    proj = mounted / "proj"
    proj.mkdir()
    git(peercling, proj, "init", "-q")
    for i in range(5):
        write_file(proj / ("f%d" % i), b"version %d\n" % i * 100)
        git(peercling, proj, "add", "-A")
        git(peercling, proj, "commit", "-q", "-m", "c%d" % i)
    git(peercling, proj, "gc", "-q", "--aggressive", "--prune=now")
    git(peercling, proj, "fsck", "--full", "--strict")
    remount(mounted)
    git(peercling, proj, "fsck", "--full", "--strict")
    assert git(peercling, proj, "rev-list", "--count", "HEAD").stdout == "5\n"


HELLO_MAIN = b"""#include <stdio.h>
int twice(int);
int main(void) { printf("hello %d\\n", twice(21)); return 0; }
"""
HELLO_UTIL = b"int twice(int x) { return 2 * x; }\n"


def test_cc_compiles_and_runs_a_program_inside_the_mount(mounted, remount, peercling):
    d = mounted / "hello"
    d.mkdir()
    write_file(d / "main.c", HELLO_MAIN)
    write_file(d / "util.c", HELLO_UTIL)
    check(peercling.run(["cc", "-c", "-o", "util.o", "util.c"], cwd=d))
    check(peercling.run(["cc", "-o", "hello", "main.c", "util.o"], cwd=d))
    assert check(run([d / "hello"])).stdout == "hello 42\n"
    remount(mounted)
    assert os.stat(d / "hello").st_mode & 0o111
    assert check(run([d / "hello"])).stdout == "hello 42\n"

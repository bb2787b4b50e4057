"""How editors and tools save files: swap files, backups, temp file + rename,
lock symlinks.  Each save must leave exactly the new content, no leftovers,
and the same after a remount."""
import os
import shutil
import stat

import pytest

from helpers import assert_same, check, read_file, run, write_file


def find_vim():
    for name in ("vim", "vim.tiny", "vi"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        run(["apt-get", "install", "-y", "-qq", "vim-tiny"], timeout=300,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        return shutil.which("vim.tiny")
    return None


@pytest.fixture
def vim():
    path = find_vim()
    if not path:
        pytest.skip("no vim, vim.tiny or vi, and cannot install vim-tiny (not root)")
    return path


def run_vim(peercling, vim, path, *cmds):
    # backupskip: vim skips backups under /tmp, where pytest's tmp_path lives.
    argv = [vim, "-es", "-i", "NONE", "-c", "set backupskip="]
    for c in cmds:
        argv += ["-c", c]
    argv.append(path)
    return check(peercling.run(argv, cwd=os.path.dirname(path)))


def test_vim_default_save_keeps_new_content_and_no_swap_file(mounted, remount, peercling, vim):
    p = mounted / "notes.txt"
    write_file(p, b"foo one\nfoo two\n")
    os.chmod(p, 0o640)
    run_vim(peercling, vim, p, "%s/foo/bar/", "wq")
    assert_same(p, b"bar one\nbar two\n")
    assert sorted(os.listdir(mounted)) == ["notes.txt"], "swap or backup file left behind"
    remount(mounted)
    assert_same(p, b"bar one\nbar two\n")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640


def test_vim_save_by_rename_with_backup_keeps_both(mounted, remount, peercling, vim):
    p = mounted / "notes.txt"
    write_file(p, b"foo one\nfoo two\n")
    os.chmod(p, 0o640)
    run_vim(peercling, vim, p, "set backupcopy=no", "set backup", "set writebackup",
            "%s/foo/bar/", "wq")
    assert_same(p, b"bar one\nbar two\n")
    assert_same(mounted / "notes.txt~", b"foo one\nfoo two\n")
    assert sorted(os.listdir(mounted)) == ["notes.txt", "notes.txt~"]
    remount(mounted)
    assert_same(p, b"bar one\nbar two\n")
    assert_same(mounted / "notes.txt~", b"foo one\nfoo two\n")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640


def test_vim_save_by_copy_with_backup_keeps_both(mounted, remount, peercling, vim):
    p = mounted / "notes.txt"
    write_file(p, b"foo\n" * 1000)
    run_vim(peercling, vim, p, "set backupcopy=yes", "set backup", "%s/foo/bar/", "wq")
    assert_same(p, b"bar\n" * 1000)
    assert_same(mounted / "notes.txt~", b"foo\n" * 1000)
    remount(mounted)
    assert_same(p, b"bar\n" * 1000)


def test_sed_i_replaces_content_and_keeps_mode(mounted, remount, peercling):
    p = mounted / "conf"
    write_file(p, b"colour=red\nsize=1\n")
    os.chmod(p, 0o600)
    check(peercling.run(["sed", "-i", "s/red/blue/", p]))
    assert_same(p, b"colour=blue\nsize=1\n")
    assert os.listdir(mounted) == ["conf"], "sed's temporary file left behind"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    remount(mounted)
    assert_same(p, b"colour=blue\nsize=1\n")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def atomic_save(path, data):
    """Save like most programs do: temp file, flush, fsync, rename over."""
    tmp = path.parent / (".%s.tmp%d" % (path.name, os.getpid()))
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def test_atomic_save_20_times_in_a_row_keeps_the_last(mounted, remount):
    p = mounted / "doc.json"
    for i in range(20):
        atomic_save(p, b'{"version": %d, "pad": "%s"}\n' % (i, b"x" * (i * 1000)))
        assert read_file(p).startswith(b'{"version": %d,' % i)
    want = b'{"version": 19, "pad": "%s"}\n' % (b"x" * 19000)
    assert_same(p, want)
    assert os.listdir(mounted) == ["doc.json"], "temporary files left behind"
    remount(mounted)
    assert_same(p, want)
    assert os.listdir(mounted) == ["doc.json"]


def test_emacs_lock_symlink_created_and_removed(mounted, remount):
    p = mounted / "todo.org"
    lock = mounted / ".#todo.org"
    write_file(p, b"* one\n")
    os.symlink("user@host.1234:1700000000", lock)
    assert os.readlink(lock) == "user@host.1234:1700000000"
    assert not os.path.exists(lock)          # dangling, as emacs makes it
    write_file(p, b"* one\n* two\n")
    os.unlink(lock)
    assert os.listdir(mounted) == ["todo.org"]
    remount(mounted)
    assert os.listdir(mounted) == ["todo.org"]
    assert_same(p, b"* one\n* two\n")


def test_emacs_style_save_with_backup_by_rename(mounted, remount):
    p = mounted / "todo.org"
    lock = mounted / ".#todo.org"
    write_file(p, b"* one\n")
    os.chmod(p, 0o644)
    remount(mounted)
    os.symlink("user@host.1234:1700000000", lock)
    os.rename(p, mounted / "todo.org~")       # backup-by-copying nil
    with open(p, "wb") as f:
        f.write(b"* one\n* two\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(p, 0o644)
    os.unlink(lock)
    remount(mounted)
    assert sorted(os.listdir(mounted)) == ["todo.org", "todo.org~"]
    assert_same(p, b"* one\n* two\n")
    assert_same(mounted / "todo.org~", b"* one\n")

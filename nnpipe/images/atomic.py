"""Writing files so that nothing already saved is lost.

Every file (and every PNG-stack folder) is written under a temporary name beside its target,
then renamed onto it in one step: a crash or a kill leaves either the old file or the new one.
A temporary is named `.nnpipe-PID-RANDOM-TAG.EXT`, TAG a checksum of the target's name, so a
later save of the same target can prove that a temporary left by a killed run is dead (no
process PID is running) and remove it. While a write is under way its temporary is listed in
IN_PROGRESS, so that Ctrl-C (nnpipe.interrupt) can remove it too.

The target itself: an existing file keeps its permission bits; a read-only file is refused; a
target that is a symbolic link is refused (nnpipe would otherwise replace the link by a file,
leaving the file it points to as it was), with a message naming the link's target. Only a
regular file is replaced by a file (and only a folder by a folder): a device, a FIFO, a socket
or a folder in the way is refused and left as it was (the rename would replace /dev/null).
"""

import contextlib
import ctypes
import os
import re
import shutil
import stat
import tempfile
import zlib

from nnpipe.errors import UserError

PREFIX = ".nnpipe-"
IN_PROGRESS = set()
_critical = []  # non-empty while a step that must not be cut in two runs (see nnpipe.interrupt)
_after_critical = []


def extension(path):
    return os.path.splitext(path)[1].lower()


def write_file(path, write):
    """Call write(temporary_path) then rename it onto `path`."""
    folder = make_folder(path)
    mode = _checked_target(path, 0o666, stat.S_ISREG)
    remove_dead_temporaries(path)
    prefix, suffix = _temporary_affixes(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as error:
        raise _cannot_write(path, error) from None
    IN_PROGRESS.add(temporary)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, mode)  # mkstemp makes it private
        os.replace(temporary, path)
    except OSError as error:
        raise _cannot_write(path, error) from None
    finally:
        _remove(temporary)


def write_folder(path, fill):
    """Call fill(temporary_folder), then swap that folder into place at `path` (the old
    folder, if any, is removed)."""
    folder = make_folder(path)
    mode = _checked_target(path, 0o777, stat.S_ISDIR)
    remove_dead_temporaries(path)
    prefix, suffix = _temporary_affixes(path)
    try:
        temporary = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as error:
        raise _cannot_write(path, error) from None
    IN_PROGRESS.add(temporary)
    try:
        fill(temporary)
        os.chmod(temporary, mode)
        with critical():
            _swap_into_place(temporary, path)
    except OSError as error:
        raise _cannot_write(path, error) from None
    finally:
        _remove(temporary)  # the new folder if it failed, else the old one


def make_folder(path):
    """Create the folder `path` goes in, if missing: a run's results must not be lost to a typo'd
    or not-yet-made output folder after hours of training. Returns the folder."""
    check_name(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot write '{path}': cannot create folder '{folder}': {error.strerror or error}"
        ) from None
    if not os.path.isdir(folder):
        raise UserError(f"cannot write '{path}': '{folder}' is not a folder")
    return folder


def check_name(path):
    """A path the system can take (it cannot hold a NUL character)."""
    if "\0" in path:
        raise UserError(f"cannot write '{path}': a file name cannot hold a NUL character")


def _cannot_write(path, error):
    return UserError(f"cannot write '{path}': {error.strerror or error}")


def _checked_target(path, new_mode, replaceable):
    """The permission bits the new file gets: the old file's, or the usual ones for a new
    file; refuse a symbolic link, a read-only file, or anything `replaceable(st_mode)` (a
    regular file, a folder) is not."""
    if os.path.islink(path):
        raise UserError(
            f"cannot write '{path}': it is a symbolic link to '{os.readlink(path)}';"
            " nnpipe does not replace links: write to the file it points to, or"
            " remove the link"
        )
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return new_mode & ~_umask()
    except OSError as error:
        raise _cannot_write(path, error) from None
    if not replaceable(status.st_mode):
        wanted = "a folder" if replaceable is stat.S_ISDIR else "a regular file"
        raise UserError(
            f"cannot write '{path}': it is {_kind(status.st_mode)}, not {wanted};"
            " nnpipe does not replace it (remove it or choose another name)"
        )
    if not status.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise UserError(f"cannot write '{path}': it is read-only (make it writable to replace it)")
    return stat.S_IMODE(status.st_mode)


def _kind(mode):
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_affixes(path):
    target = os.path.basename(os.path.normpath(path))
    tag = f"{zlib.crc32(target.encode('utf-8', 'surrogateescape')):08x}"
    return f"{PREFIX}{os.getpid()}-", f"-{tag}{extension(target)}"


def remove_dead_temporaries(path):
    """Remove the temporaries of earlier writes of `path` whose process is gone."""
    folder = os.path.dirname(os.path.abspath(path))
    _, suffix = _temporary_affixes(path)
    pattern = re.compile(re.escape(PREFIX) + r"(\d+)-[^/]*" + re.escape(suffix) + "$")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not _alive(int(match.group(1))):
            _remove(entry.path)


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove(path):
    IN_PROGRESS.discard(path)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def remove_in_progress():
    """Remove the temporaries of the writes under way (on Ctrl-C)."""
    for path in list(IN_PROGRESS):
        _remove(path)


@contextlib.contextmanager
def critical():
    """A step that Ctrl-C must not cut in two; nnpipe.interrupt stops after it."""
    _critical.append(True)
    try:
        yield
    finally:
        _critical.pop()
        while not _critical and _after_critical:
            _after_critical.pop(0)()


def in_critical_step():
    return bool(_critical)


def after_critical_step(action):
    """Run `action` once the critical step under way has finished."""
    _after_critical.append(action)


def _swap_into_place(temporary, path):
    """Put folder `temporary` at `path`; the previous folder at `path` ends up at `temporary`."""
    if not os.path.lexists(path):
        os.rename(temporary, path)
        return
    if _exchange(temporary, path):
        return
    # no atomic exchange on this system: two renames (a crash between them leaves the old
    # folder under a hidden temporary name beside the target)
    backup = temporary + ".old"
    os.rename(path, backup)
    os.rename(temporary, path)
    os.rename(backup, temporary)


def _exchange(first, second):
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False if unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd, rename_exchange = -100, 2
    return renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), rename_exchange) == 0

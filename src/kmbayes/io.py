"""Atomic file output: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask_mode() -> int:
    # mkstemp creates 0600 files; published outputs should get the usual mode.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, _umask_mode())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


JOURNAL_PREFIX = ".kmbayes-journal."


def write_many_atomic(files: dict[Path, str | bytes]) -> None:
    """Write several files (text or bytes) so that either all appear or none do.

    Each is written to a temporary sibling first. Only when every one has
    been written is a journal written (atomically) next to them, listing
    the renames; then the renames are done and the journal deleted. A
    process killed before the journal exists leaves only temp files (the old
    set stays whole; :func:`remove_leftovers` removes them); killed after,
    the next command under the output lock rolls the journal forward
    (:func:`replay_journals`), so the new set appears whole.
    """
    tmps: dict[Path, Path] = {}
    committed = False
    try:
        for path, text in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            tmps[path] = Path(tmp)
            if isinstance(text, bytes):
                with os.fdopen(fd, "wb") as fh:
                    fh.write(text)
            else:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                    fh.write(text)
        mode = _umask_mode()
        for tmp in tmps.values():
            os.chmod(tmp, mode)
        journal = None
        if len(tmps) > 1:
            import json

            home = Path(os.path.commonpath([str(p.parent.resolve()) for p in tmps]))
            doc = json.dumps([[str(t.resolve()), str(p.resolve())] for p, t in tmps.items()])
            with atomic_path(home / f"{JOURNAL_PREFIX}{os.getpid()}.json") as jt:
                jt.write_text(doc, encoding="utf-8")
                journal = home / f"{JOURNAL_PREFIX}{os.getpid()}.json"
        committed = True
        for path, tmp in tmps.items():
            os.replace(tmp, path)
        if journal is not None:
            journal.unlink()
    finally:
        if not committed:
            for tmp in tmps.values():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


def replay_journals(directory: str | os.PathLike) -> int:
    """Finish the renames of journals left in ``directory`` by killed runs; return how many.

    Call only under the output lock. A journal lists (temp, final) pairs
    whose temp files were all complete when it was written; a pair whose
    temp file is gone was already renamed. A journal naming files outside
    ``directory`` (hand-made) is ignored and removed.
    """
    import json

    directory = Path(directory)
    done = 0
    for j in sorted(directory.glob(f"{JOURNAL_PREFIX}*.json")):
        try:
            pairs = json.loads(j.read_text(encoding="utf-8"))
            base = directory.resolve()
            for tmp, final in pairs:
                tmp, final = Path(tmp), Path(final)
                if not (tmp.is_relative_to(base) and final.is_relative_to(base)
                        and tmp.parent == final.parent and tmp.name.startswith(f".{final.name}.")):
                    continue
                if tmp.exists():
                    os.replace(tmp, final)
            done += 1
        except (OSError, ValueError, TypeError):
            pass
        with contextlib.suppress(OSError):
            j.unlink()
    return done


# --------------------------------------------------------------------------- inputs


def read_toml(path: str | os.PathLike, *, what: str, max_bytes: int | None = None, field: str = "file") -> dict:
    """Read and parse a TOML file; every problem is an InputError on ``field``.

    Checks, in order: exists and is a regular file, size (``max_bytes``),
    not empty, not binary, UTF-8, valid TOML, nesting depth
    (``LIMITS["toml_depth_max"]``). ``tomllib`` recurses on nested inline
    arrays, so a file nested ~500 deep raised RecursionError: that is caught
    here, and dotted keys nested deeper than the limit are refused after
    parsing.
    """
    import tomllib

    from .errors import InputError
    from .limits import LIMITS, toml_depth

    path = Path(path)
    check_path_length(path, field)
    try:
        if not path.exists():
            raise InputError(field, f"{what} not found: {path}")
        if not path.is_file():
            raise InputError(field, f"{what} is not a regular file: {path}")
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise InputError(field, f"{what} is {size} bytes, above the limit of {max_bytes}")
        raw = path.read_bytes()
    except OSError as ex:
        raise InputError(field, f"cannot read {what} {path.name}: {ex.strerror or type(ex).__name__}") from None
    if not raw.strip():
        raise InputError(field, f"{what} is empty: {path}")
    if b"\x00" in raw:
        raise InputError(field, f"{what} is binary, not TOML: {path}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(field, f"{what} is not UTF-8 text: {path}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as ex:
        raise InputError(field, f"invalid TOML in {path.name}: {ex}") from None
    except RecursionError:
        raise InputError(field, f"{path.name} is nested too deeply (limit {LIMITS['toml_depth_max']})") from None
    if toml_depth(doc) > LIMITS["toml_depth_max"]:
        raise InputError(field, f"{path.name} is nested too deeply (limit {LIMITS['toml_depth_max']})")
    return doc


def check_path_length(path: str | os.PathLike, field: str) -> None:
    """Refuse a path longer than ``LIMITS["path_chars_max"]`` or with a NUL byte."""
    from .errors import InputError
    from .limits import LIMITS

    s = os.fspath(path)
    if "\x00" in s:
        raise InputError(field, "path contains a NUL byte")
    if len(s) > LIMITS["path_chars_max"] * 16 or any(len(part) > LIMITS["path_chars_max"]
                                                     for part in Path(s).parts):
        raise InputError(field, f"path too long (a name is limited to {LIMITS['path_chars_max']} characters)")


def check_output_path(path: str | os.PathLike, field: str, *, is_dir: bool,
                      protect: tuple = ()) -> Path:
    """Check an output path before anything is written; return it resolved.

    Refuses: a path inside a regular file (``out.csv/x``), a file where a
    directory is wanted or a directory where a file is wanted, a path under
    ``/proc``, ``/sys`` or ``/dev``, a directory that cannot be created or
    written, and any path in ``protect`` (the input files: ``reconstruct
    --out trial.toml`` used to overwrite its own input).
    """
    from .errors import InputError

    path = Path(path)
    check_path_length(path, field)
    try:
        full = path.resolve()
    except (OSError, RuntimeError) as ex:  # RuntimeError: symlink loop (Python < 3.13)
        raise InputError(field, f"cannot resolve {path}: {type(ex).__name__}") from None
    if full.parts[:2] in (("/", "proc"), ("/", "sys"), ("/", "dev")):
        raise InputError(field, f"refusing to write under /{full.parts[1]}")
    for p in protect:
        if p is not None and Path(p).exists() and full == Path(p).resolve():
            raise InputError(field, f"would overwrite the input file {Path(p).name}")
    target_dir = full if is_dir else full.parent
    if full.exists():
        if is_dir and not full.is_dir():
            raise InputError(field, f"is a file, not a directory: {path}")
        if not is_dir and full.is_dir():
            raise InputError(field, f"is a directory: {path}")
    # The nearest existing ancestor must be a writable directory.
    anc = target_dir
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(field, f"{anc.name} is a file, not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(field, f"directory not writable: {anc}")
    return full


# --------------------------------------------------------------------------- locking and leftovers

LOCK_NAME = ".kmbayes.lock"


@contextlib.contextmanager
def output_lock(root: str | os.PathLike, field: str = "--output",
                sweep: tuple[str, ...] | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``root/.kmbayes.lock`` while a command writes under ``root``.

    A second command writing to the same root fails at once with InputError
    (exit 2) instead of interleaving its files with the first one's. The lock
    is an ``fcntl.flock``: the kernel releases it when the process dies, so a
    SIGKILLed run never leaves a stale lock behind. Under the lock, temp files
    left by killed runs are removed (:func:`remove_leftovers`); with ``sweep``
    (name prefixes) only those directly in ``root`` that start with one of
    them -- for ``reconstruct --out``, whose directory may be anyone's.
    """
    import fcntl

    from .errors import InputError

    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as ex:
        raise InputError(field, f"cannot create {root}: {ex.strerror or type(ex).__name__}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(field, f"another kmbayes run is writing to {root}; wait for it to finish") from None
        # Roll forward multi-file writes a killed run committed, then drop
        # the temp files of writes it had not committed.
        for d in [root] + [p for sub in ("data", "models", "reports") if (root / sub).is_dir()
                           for p in [root / sub, *(q for q in (root / sub).rglob("*") if q.is_dir())]]:
            replay_journals(d)
        if sweep is None:
            remove_leftovers(root)
        else:
            remove_leftovers(root, subdirs=(), prefixes=sweep)
        yield root
    finally:
        os.close(fd)  # closing releases the flock


# Our temp names: atomic_path / write_many_atomic (".<name>.<random>.tmp") and
# the fit store's TemporaryDirectory (".tmp-<random>").
_TMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")
_TMP_DIR = re.compile(r"^\.tmp-[A-Za-z0-9_]{6,}$")


def remove_leftovers(root: str | os.PathLike, subdirs: tuple[str, ...] = ("data", "models", "reports"),
                     prefixes: tuple[str, ...] | None = None) -> list[Path]:
    """Remove temp files and dirs that killed runs left under ``root``; return them.

    Only names this package creates are touched, only directly in ``root``
    and recursively under its ``subdirs`` (the run layout; the repository
    root is a run root too, so ``.git`` and the rest are never walked), and
    only when the caller holds the output lock, so a live run's temp files
    are never removed.
    """
    import shutil

    root = Path(root)
    removed: list[Path] = []

    def sweep(dirpath: Path, names_d, names_f) -> None:
        for d in list(names_d):
            if _TMP_DIR.match(d) and prefixes is None:
                shutil.rmtree(dirpath / d, ignore_errors=True)
                removed.append(dirpath / d)
                names_d.remove(d)
        for f in names_f:
            if _TMP_FILE.match(f) and (prefixes is None or f.startswith(prefixes)):
                with contextlib.suppress(OSError):
                    (dirpath / f).unlink()
                    removed.append(dirpath / f)

    try:
        top = list(os.scandir(root))
    except OSError:
        return removed
    sweep(root, [e.name for e in top if e.is_dir(follow_symlinks=False)],
          [e.name for e in top if e.is_file(follow_symlinks=False)])
    for sub in subdirs:
        if not (root / sub).is_dir() or (root / sub).is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(root / sub):
            sweep(Path(dirpath), dirnames, filenames)
    return removed

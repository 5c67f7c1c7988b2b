"""Files written whole or not at all, and content hashes.

Every file the harness writes (cache entries, run outputs, reports) goes through the atomic writes
here: a temporary file beside the target, flushed to disk, then renamed over it, so a reader (or a
run killed midway) sees the old file or the new one, never a part. Keys are hashes of content:
``stable_hash`` of a JSON-able value, ``file_sha256`` of a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def stable_hash(obj: Any, length: int = 20) -> str:
    """Hash of a JSON-serialisable object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    """The process's umask (reading it means setting it: set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it over ``path``."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename it over ``path``:
    readers see the old file or the new one, never a part, even if the machine stops."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; a file written in place would get 0666 less the umask, and
        # so must this one, or a shared run folder or a CI artifact server cannot read report.html.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy a (small) file so that ``dest`` is never seen half-written."""
    write_bytes_atomic(dest, Path(src).read_bytes())


def _json_default(obj):
    # numpy scalars and arrays come out of lm-eval and scikit-learn.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)

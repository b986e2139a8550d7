"""A model folder sent as a tar archive (`gateway models add NAME DIR`), read safely: only
regular files, relative paths that stay inside the folder, within a size bound."""

from __future__ import annotations

import io
import tarfile
from pathlib import PurePosixPath

from gateway.control.lifecycle.errors import LifecycleError

TAR_TYPES = ("application/x-tar", "application/gzip", "application/x-gzip")
MAX_FILES = 10_000


def folder_files(archive: bytes, max_bytes: int) -> dict[str, bytes]:
    """Each regular file of the archive by its path inside the folder (a leading `./`
    dropped), at most `max_bytes` in all once unpacked; LifecycleError for anything else."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar:
                if member.isdir():
                    continue
                path = PurePosixPath(member.name)
                parts = [part for part in path.parts if part != "."]
                if not member.isfile() or path.is_absolute() or ".." in parts or not parts:
                    raise LifecycleError(
                        f"the archive's '{member.name}' is not a plain file inside the folder"
                    )
                total += member.size
                if len(files) >= MAX_FILES or total > max_bytes:
                    raise LifecycleError(
                        f"the folder is over {MAX_FILES} files or {max_bytes} bytes unpacked"
                    )
                handle = tar.extractfile(member)
                files["/".join(parts)] = handle.read() if handle is not None else b""
    except tarfile.TarError as exc:
        raise LifecycleError(f"not a tar archive of a model folder: {exc}") from exc
    return files

"""Run storage: a local directory or a pyarrow.fs URI (s3://, gs://, ...), for the per-trial result files.

Ray Tune writes its own layout into `<storage>/<name>/`; the trainable writes qgan's per-trial files into
`<storage>/<name>/trials/<trial_id>/`. On a local path files are written in place (atomically); on a URI they
are written to a local folder first and uploaded with `pyarrow.fs.copy_files`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from qgan import results


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def normalize(storage: str) -> str:
    """Absolute local path (user and vars expanded) or the URI unchanged."""
    if storage.startswith("file://"):
        storage = storage[len("file://"):]
    if is_uri(storage):
        return storage.rstrip("/")
    return str(Path(os.path.expandvars(storage)).expanduser().resolve())


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if is_uri(base) else str(Path(base, *parts))


class Store:
    """Small-file access below a run directory (local path or URI)."""

    def __init__(self, root: str):
        self.root = normalize(root)
        self.uri = is_uri(self.root)
        if self.uri:
            self.fs, self.base = pafs.FileSystem.from_uri(self.root)
        else:
            self.fs, self.base = None, self.root

    def check_writable(self) -> None:
        """ValueError (one line) unless a local root can be created and written; URIs are checked by their use."""
        if self.uri:
            return
        probe = Path(self.root, f".write-test-{os.getpid()}")
        try:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ValueError(f"cannot write to {self.root}: {exc.strerror or exc}; choose another --storage "
                             f"(or set QGAN_RUNS_DIR)") from None

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    def _fs_path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])

    def exists(self, *parts: str) -> bool:
        if not self.uri:
            return Path(self.root, *parts).exists()
        return self.fs.get_file_info(self._fs_path(*parts)).type != pafs.FileType.NotFound

    def read_text(self, *parts: str) -> str:
        if not self.uri:
            return Path(self.root, *parts).read_text()
        with self.fs.open_input_stream(self._fs_path(*parts)) as f:
            return f.read().decode()

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_text(*parts))

    def write_text(self, text: str, *parts: str) -> None:
        """Write (atomically on a local path)."""
        if not self.uri:
            results.write_text(Path(self.root, *parts), text)
            return
        self.fs.create_dir(self._fs_path(*parts[:-1]), recursive=True)
        with self.fs.open_output_stream(self._fs_path(*parts)) as f:
            f.write(text.encode())

    def append_line(self, line: str, *parts: str) -> None:
        """Append one line (read-modify-write on object stores, which cannot append)."""
        if not self.uri:
            target = Path(self.root, *parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a") as f:
                f.write(line.rstrip("\n") + "\n")
            return
        old = self.read_text(*parts) if self.exists(*parts) else ""
        self.write_text(old + line.rstrip("\n") + "\n", *parts)

    def upload_dir(self, local_dir: str, *parts: str) -> None:
        """Copy a local folder below the run directory (URI stores only; local stores write in place)."""
        if not self.uri:
            raise RuntimeError("upload_dir is only needed for URI storage")
        dest = self._fs_path(*parts)
        self.fs.create_dir(dest, recursive=True)
        pafs.copy_files(local_dir, dest, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)

    def list_dirs(self, *parts: str) -> list[str]:
        """Names of the sub-folders of a folder ([] when it does not exist)."""
        if not self.uri:
            p = Path(self.root, *parts)
            return sorted(c.name for c in p.iterdir() if c.is_dir()) if p.is_dir() else []
        sel = pafs.FileSelector(self._fs_path(*parts), allow_not_found=True)
        return sorted(Path(i.path).name for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.Directory)

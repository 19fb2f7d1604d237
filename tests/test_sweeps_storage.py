"""Run storage helpers: local paths (atomic writes) and the pyarrow.fs code path used for URIs."""
from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from sweeps.storage import Store, is_uri, join, normalize


def test_local_store_writes_reads_appends_and_lists(tmp_path):
    store = Store(str(tmp_path / "run"))
    assert not store.uri and not store.exists("trials", "a", "summary.json")
    store.write_text('{"status": "completed"}', "trials", "a", "summary.json")
    store.append_line("one", "trials", "a", "attempts.jsonl")
    store.append_line("two", "trials", "a", "attempts.jsonl")
    assert store.read_json("trials", "a", "summary.json") == {"status": "completed"}
    assert store.read_text("trials", "a", "attempts.jsonl") == "one\ntwo\n"
    assert store.list_dirs("trials") == ["a"] and store.list_dirs("missing") == []
    assert not [p for p in (tmp_path / "run" / "trials" / "a").iterdir() if p.name.endswith(".tmp")]


def test_uri_store_goes_through_pyarrow_filesystem(tmp_path):
    store = Store(str(tmp_path))
    store.uri, store.fs, store.base = True, pafs.LocalFileSystem(), str(tmp_path / "bucket")  # stand-in for s3
    local = tmp_path / "local" / "t1"
    local.mkdir(parents=True)
    (local / "config.json").write_text("{}")
    store.upload_dir(str(local), "trials", "t1")
    store.append_line("x", "trials", "t1", "attempts.jsonl")
    store.append_line("y", "trials", "t1", "attempts.jsonl")
    assert (tmp_path / "bucket" / "trials" / "t1" / "config.json").read_text() == "{}"
    assert store.read_text("trials", "t1", "attempts.jsonl") == "x\ny\n"
    assert store.exists("trials", "t1") and not store.exists("trials", "t2")
    assert store.list_dirs("trials") == ["t1"]


@pytest.mark.parametrize("raw,uri", [("s3://bucket/runs/", True), ("/tmp/x", False), ("file:///tmp/x", False)])
def test_storage_paths_are_normalized(raw, uri):
    assert is_uri(normalize(raw)) is uri
    assert join("s3://b/runs", "r", "trials") == "s3://b/runs/r/trials"

"""Find and stop the Ray processes of ONE Ray instance, identified by its --temp-dir.

`ray stop` stops every Ray process of the user on the machine, including other people's clusters. This
stops only the processes whose command line names the given temp dir (gcs_server, raylet, dashboard, agents,
log monitor) and all their descendants (workers, whose titles read `ray::...`), by pid.

    python cluster/ray_procs.py list TEMP_DIR
    python cluster/ray_procs.py stop TEMP_DIR [--grace 5]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every readable process (Linux /proc)."""
    table: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        table[pid] = (ppid, cmd)
    return table


def find(temp_dir: str) -> list[int]:
    """Pids of the Ray processes started with `temp_dir` and of all their descendants (never this process)."""
    temp_dir = os.path.abspath(temp_dir).rstrip("/")
    table = _proc_table()
    me = os.getpid()
    roots = {pid for pid, (_, cmd) in table.items()
             if pid != me and (f"{temp_dir}/" in cmd or cmd.rstrip().endswith(temp_dir) or f"{temp_dir} " in cmd)
             and ("ray" in cmd)}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in found or pid == me:
            continue
        found.add(pid)
        stack.extend(children.get(pid, []))
    return sorted(found)


def stop(temp_dir: str, grace: float = 5.0) -> list[int]:
    """SIGTERM the instance's processes, SIGKILL what is left after `grace` seconds; returns the pids."""
    pids = find(temp_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids + [p for p in find(temp_dir) if p not in pids]:  # also late-spawned workers
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("list", "stop"))
    parser.add_argument("temp_dir")
    parser.add_argument("--grace", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.action == "list":
        table = _proc_table()
        for pid in find(args.temp_dir):
            print(pid, table.get(pid, (0, "?"))[1][:120])
        return 0
    pids = stop(args.temp_dir, args.grace)
    print(f"stopped {len(pids)} process(es) of the Ray instance in {args.temp_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

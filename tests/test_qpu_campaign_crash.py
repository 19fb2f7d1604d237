"""kill -9 of the campaign driver mid-run, then `--resume` with no other flag: the budget holds (from the ledger),
nothing is submitted twice and every trial finishes; against an API that outlives the driver (an emulator in this
test process, like IonQ) and in the README's emulator rehearsal (the emulator dies with the driver; its job store
is on disk in the run)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qgan.ionq.emulator import Emulator, EmulatorConfig, EmulatorState, fetch_stats
from sweeps.gateway import ledger_summary

pytestmark = pytest.mark.slow

TOKEN = "crash-test-token-0a9f3e71"
REPO = Path(__file__).resolve().parent.parent
SMOKE_FERRITE_SHOTS = 15 * 64  # 1 + 2 x (2 x 3 + 1) circuits x 64 shots: the plan, exactly


def _campaign(args: list[str], log: Path, temp: str) -> subprocess.Popen:
    env = {**os.environ, "IONQ_API_KEY": TOKEN, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "sweeps/qpu_campaign.py", *args, "--num-cpus", "2",
                             "--ray-temp-dir", temp], cwd=REPO, env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _ledger(run: Path) -> list[dict]:
    path = run / "qpu" / "ledger.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _kill_mid_run(proc: subprocess.Popen, run: Path, results_before_kill: int = 3, timeout: float = 240) -> dict:
    """SIGKILL the driver once `results_before_kill` jobs have finished and some are still to come."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the campaign ended before it could be killed"
        recs = _ledger(run)
        done = sum(r["type"] == "result" for r in recs)
        if done >= results_before_kill:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the campaign made no progress")
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: Ray's processes notice it died
    proc.wait(timeout=30)
    pgid = proc.pid
    end = time.time() + 30
    while time.time() < end:  # what the driver started (raylet, workers, the gateway actor) goes down with it
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(pgid, signal.SIGKILL)  # our own process group, by its id
    recs = _ledger(run)
    return {"results": sum(r["type"] == "result" for r in recs),
            "intents": sum(r["type"] == "intent" for r in recs),
            "in_flight": sum(r["type"] == "submitted" for r in recs) - sum(r["type"] == "result" for r in recs)}


def _finish(args: list[str], log: Path, temp: str) -> int:
    proc = _campaign(args, log, temp)
    try:
        return proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _check_run(run: Path, budget: int, log: Path, from_checkpoint: bool) -> dict:
    summaries = {p.parent.name: json.loads(p.read_text()) for p in run.glob("trials/*/summary.json")}
    assert len(summaries) == 2 and all(s["status"] == "completed" for s in summaries.values()), \
        (summaries, log.read_text()[-4000:])
    used = ledger_summary(str(run / "qpu" / "ledger.jsonl"))
    status = json.loads((run / "qpu" / "gateway_status.json").read_text())
    record = json.loads((run / "qpu_campaign.json").read_text())
    assert record["gateway"]["budget_shots"] == budget and status["budget_shots"] == budget
    assert used["used_shots"] <= budget and used["double_submitted"] == {}
    assert used["starts"] >= 1  # the gateway really started again on the same ledger
    qcbm = next(t for t in summaries if "-qcbm-" in t)
    attempts = [json.loads(line) for line in (run / "trials" / qcbm / "attempts.jsonl").read_text().splitlines()]
    starts = [a["kind"] for a in attempts if a["kind"] in ("start", "resume")]
    assert len(starts) == 2 and (starts[1] == "resume") == from_checkpoint, attempts  # it ran again after the kill
    intents = sum(1 for r in _ledger(run) if r["type"] == "intent")
    assert intents == used["jobs"] == 9  # 1 + 2 x (3 + 1) jobs: the replayed requests were answered by the ledger
    assert len(record["starts"]) == 2 and "--resume" in record["starts"][1]["argv"]
    text = log.read_text()
    assert TOKEN not in text and not any(TOKEN in p.read_text(errors="replace") for p in run.rglob("*.json*"))
    return used


def test_kill9_of_the_driver_then_resume_keeps_the_budget_against_an_api_that_outlives_it(tmp_path):
    temp = tempfile.mkdtemp(prefix="qck", dir="/tmp")  # short: Ray's socket paths
    log = tmp_path / "campaign.log"
    run = tmp_path / "runs" / "crash"
    with Emulator(EmulatorConfig(token=TOKEN, latency=1.0, store_dir=str(tmp_path / "ionq"))) as emu:
        first = ["--preset", "smoke", "--phase", "ferrite", "--backend", "ionq", "--url", emu.url, "--storage",
                 str(tmp_path / "runs"), "--name", "crash", "--budget-shots", str(SMOKE_FERRITE_SHOTS),
                 "--max-jobs-per-minute", "600", "--poll-interval", "0.2", "--max-failures", "1"]
        at_kill = _kill_mid_run(_campaign(first, log, temp), run, results_before_kill=6)  # after epoch 1
        rc = _finish(["--storage", str(tmp_path / "runs"), "--name", "crash", "--resume"], log, temp)
        stats = fetch_stats(emu.url, TOKEN)
    assert rc == 0, log.read_text()[-4000:]
    used = _check_run(run, SMOKE_FERRITE_SHOTS, log, from_checkpoint=True)
    assert stats["duplicates"] == {} and stats["counters"]["submitted"] == used["jobs"]
    print(f"acceptance (IonQ-like API): killed after {at_kill['results']} of {used['jobs']} jobs "
          f"({at_kill['in_flight']} in flight); shots committed "
          f"{used['used_shots']} of budget {SMOKE_FERRITE_SHOTS}; API submissions {stats['counters']['submitted']} "
          f"for {used['jobs']} jobs ({used['circuits']} circuits); duplicates {len(stats['duplicates'])}")


def test_kill9_of_the_emulator_rehearsal_then_resume_keeps_the_budget_and_its_jobs(tmp_path):
    temp = tempfile.mkdtemp(prefix="qck", dir="/tmp")
    log = tmp_path / "rehearsal.log"
    run = tmp_path / "runs" / "rehearsal"
    first = ["--preset", "smoke", "--phase", "ferrite", "--backend", "emulator", "--storage",
             str(tmp_path / "runs"), "--name", "rehearsal", "--budget-shots", str(SMOKE_FERRITE_SHOTS),
             "--emulator-latency", "1.0", "--max-failures", "1"]
    at_kill = _kill_mid_run(_campaign(first, log, temp), run)
    rc = _finish(["--storage", str(tmp_path / "runs"), "--name", "rehearsal", "--resume"], log, temp)
    assert rc == 0, log.read_text()[-4000:]
    used = _check_run(run, SMOKE_FERRITE_SHOTS, log, from_checkpoint=False)  # killed inside epoch 1
    store = EmulatorState(EmulatorConfig(token="read-only", store_dir=str(run / "qpu" / "emulator")))
    stats = store.stats()
    store.close()
    assert stats["duplicates"] == {} and stats["jobs"] == used["jobs"]
    assert "lost on the API" not in log.read_text()
    print(f"acceptance (emulator rehearsal): killed after {at_kill['results']} of {used['jobs']} jobs "
          f"({at_kill['in_flight']} in flight); shots "
          f"committed {used['used_shots']} of budget {SMOKE_FERRITE_SHOTS}; emulator jobs {stats['jobs']}; "
          f"duplicates {len(stats['duplicates'])}")

"""The QPU gateway logic in one process (no Ray): rate window, budget, retries, ledger restart, token hygiene."""
from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest
import torch

from qgan.ionq import IonQConnection
from qgan.ionq.emulator import Emulator, EmulatorConfig, fetch_stats
from qgan.quantum import Ansatz
from sweeps.gateway import BudgetExceeded, GatewayBackend, GatewayConfig, Ledger, QPUGateway

TOKEN = "gw-core-token-3c9d1e2f"


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv("IONQ_API_KEY", TOKEN)


def _cfg(tmp_path, url, **kw) -> GatewayConfig:
    base = dict(campaign="test", ledger_dir=str(tmp_path / "qpu"), url=url, max_jobs_per_period=100, period_s=1.0,
                max_in_flight=8, poll_interval_s=0.05, backoff_base_s=0.05, backoff_cap_s=0.5)
    base.update(kw)
    return GatewayConfig(**base)


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if s <= u < s + window) for s in times), default=0)


def _trial(gw, tid: str, calls: int, shots: int, out: dict, n: int = 3):
    try:
        a = Ansatz(n, connectivity="full")
        g = torch.Generator().manual_seed(abs(hash(tid)) % 10_000)
        be = GatewayBackend("test", tid, handle=gw, wait_s=0.5)
        for _ in range(calls):
            idx = be.sample(a, a.random_start(g), shots, g)
            assert idx.shape == (1, shots)
        out[tid] = be.circuit_calls
    except Exception as exc:  # noqa: BLE001 - reported to the test thread
        out[tid] = exc


def test_rate_window_holds_for_8_concurrent_trials_and_429s_are_absorbed(tmp_path):
    limit, window = 6, 2.0
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.2, rate_limit_prob=0.3, retry_after=0.1, seed=1)) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url, max_jobs_per_period=limit, period_s=window))
        out: dict = {}
        threads = [threading.Thread(target=_trial, args=(gw, f"t{i}", 2, 20, out)) for i in range(8)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        elapsed = time.time() - t0
        stats = fetch_stats(emu.url, TOKEN)
        status = gw.status()
        gw.shutdown()
    print(f"rate: limit {limit}/{window}s, max in any window {_max_in_window(stats['submission_times'], window)}, "
          f"429s injected {stats['counters']['status_429']}, retried {status['stats']['retries_429']}, "
          f"submitted {stats['counters']['submitted']}, elapsed {elapsed:.1f}s")
    assert out == {f"t{i}": 2 for i in range(8)}, out
    assert stats["counters"]["submitted"] == 16 and stats["duplicates"] == {}
    assert _max_in_window(stats["submission_times"], window) <= limit
    assert stats["counters"]["status_429"] >= 1 and status["stats"]["retries_429"] >= 1
    assert elapsed >= (16 / limit - 1) * window  # the limiter really spaced them out


def test_budget_is_never_exceeded_and_the_refused_trial_gets_budget_exceeded(tmp_path):
    budget = 250
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.05)) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url, budget_shots=budget))
        out: dict = {}
        threads = [threading.Thread(target=_trial, args=(gw, f"t{i}", 1, 100, out)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stats = fetch_stats(emu.url, TOKEN)
        status = gw.status()
        gw.shutdown()
    refused = [k for k, v in out.items() if isinstance(v, BudgetExceeded)]
    print(f"budget: {budget} shots, used {status['used_shots']}, submitted {stats['counters']['submitted']} x 100, "
          f"refused {len(refused)}: {out[refused[0]] if refused else None}")
    assert len(refused) == 3 and sum(1 for v in out.values() if v == 1) == 2
    assert "shot budget exhausted" in str(out[refused[0]])
    assert stats["counters"]["submitted"] * 100 <= budget and status["used_shots"] == 200
    assert status["stats"]["refused"] == 3


def test_cost_budget_refuses_work_that_would_exceed_it(tmp_path):
    circ = [{"gate": "gpi2", "target": 0, "phase": 0.25}, {"gate": "ms", "targets": [0, 1], "phases": [0, 0],
                                                           "angle": 0.1}]
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0)) as emu:
        cfg = _cfg(tmp_path, emu.url, budget_cost=1.0, price_1q_gate_shot=0.001, price_2q_gate_shot=0.004)
        gw = QPUGateway(cfg)
        # one job of 100 shots costs 100 * (0.001 + 0.004) = 0.5
        assert gw.submit("a", "t", 100, circuits=[circ], qubits=2)["status"] == "pending"
        assert gw.submit("b", "t", 100, circuits=[circ], qubits=2)["status"] == "pending"
        refused = gw.submit("c", "t", 100, circuits=[circ], qubits=2)
        assert gw.wait("b", 30)["status"] == "completed"
        gw.shutdown()
    assert refused["status"] == "budget_exceeded" and "cost budget" in refused["reason"]


def test_run_trial_stops_with_failed_status_when_the_budget_runs_out(tmp_path):
    from qgan.train import TrialConfig, run_trial

    cfg = TrialConfig.from_dict({"phase": "ferrite", "model": "qcbm", "seed": 0, "n": 3, "train_size": 16,
                                 "eval_size": 8, "epochs": 3, "batch_size": 8, "width": 4, "qcbm_optimizer": "spsa",
                                 "spsa_iterations": 2, "update_every": 1, "qcbm_epochs": 3, "qcbm_samples": 16,
                                 "backend": "ionq", "eval_every": 1, "n_samples_saved": 0})
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0)) as emu:
        # 8 circuits of 16 shots: the initial pool (1) and one SPSA update (2 x 2 + 1) fit, the second update not
        gw = QPUGateway(_cfg(tmp_path, emu.url, budget_shots=16 * 8))
        backend = GatewayBackend("test", "trial-budget", handle=gw, wait_s=0.5)
        with pytest.raises(BudgetExceeded):
            run_trial(cfg, out_dir=str(tmp_path / "trial"), backend=backend)
        used = gw.status()["used_shots"]
        gw.shutdown()
    summary = json.loads((tmp_path / "trial" / "summary.json").read_text())
    assert summary["status"] == "failed" and "budget exhausted" in summary["failure_reason"]
    assert used <= 16 * 8


class _DiesMidSubmit:
    """A connection whose submit really POSTs, then never returns: the gateway 'dies' mid-call."""

    def __init__(self, url):
        self.inner = IonQConnection(url=url)
        self.hang = threading.Event()

    def submit(self, circuit, shots, name, debias=None):
        self.inner.submit(circuit, shots, name, debias=debias)
        self.hang.wait()  # the response is lost with the process
        raise RuntimeError("unreachable")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_restarted_gateway_resumes_polling_and_reconciles_uncertain_jobs_without_duplicates(tmp_path):
    circ = [{"gate": "gpi", "target": 0, "phase": 0.0}]
    with Emulator(EmulatorConfig(token=TOKEN, latency=1.0)) as emu:
        # Instance 1: submits two jobs normally, then a third whose POST reaches the API but never returns.
        dying = _DiesMidSubmit(emu.url)
        cfg = _cfg(tmp_path, emu.url, max_in_flight=8)
        gw1 = QPUGateway(cfg)
        for k in ("r1", "r2"):
            gw1.submit(k, "t", 10, circuits=[circ], qubits=1)
        deadline = time.time() + 20
        while gw1.status()["jobs"].get("submitted", 0) < 2 and time.time() < deadline:
            time.sleep(0.02)
        gw1._conn = dying
        gw1.submit("r3", "t", 10, circuits=[circ], qubits=1)
        while fetch_stats(emu.url, TOKEN)["counters"]["submitted"] < 3 and time.time() < deadline:
            time.sleep(0.02)
        gw1._stop.set()  # "killed": no more ledger writes from instance 1
        # Instance 2 on the same ledger.
        gw2 = QPUGateway(cfg)
        results = {k: gw2.wait(k, 30) for k in ("r1", "r2", "r3")}
        again = gw2.submit("r1", "t", 10, circuits=[circ], qubits=1)  # a caller retrying after the restart
        stats = fetch_stats(emu.url, TOKEN)
        status = gw2.status()
        gw2.shutdown()
        dying.hang.set()
    assert all(r["status"] == "completed" for r in results.values()), results
    assert again["status"] == "completed" and again["counts"] == results["r1"]["counts"]
    assert stats["counters"]["submitted"] == 3 and stats["duplicates"] == {}
    assert status["stats"]["resumed_polling"] == 2 and status["stats"]["reconciled_found"] == 1
    assert status["stats"]["restarts"] == 1


def test_lost_submission_response_is_reconciled_in_flight(tmp_path):
    circ = [{"gate": "gpi2", "target": 0, "phase": 0.0}]
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.05, fault_after_create_prob=1.0)) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url))
        gw.submit("k", "t", 10, circuits=[circ, circ], qubits=1)
        res = gw.wait("k", 30)
        stats = fetch_stats(emu.url, TOKEN)
        status = gw.status()
        gw.shutdown()
    assert res["status"] == "completed"
    assert stats["counters"]["submitted"] == 2 and stats["duplicates"] == {}
    assert status["stats"]["reconciled_found"] == 2


def test_5xx_faults_are_retried_and_fatal_errors_fail_the_request(tmp_path):
    circ = [{"gate": "gpi2", "target": 0, "phase": 0.0}]
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.05, fault_every=4)) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url))
        gw.submit("ok", "t", 10, circuits=[circ] * 4, qubits=1)
        ok = gw.wait("ok", 30)
        # 30 qubits: more than the (emulated) QPU has -> HTTP 400, not retriable
        gw.submit("bad", "t", 10, circuits=[circ], qubits=30)
        res = gw.wait("bad", 30)
        stats = fetch_stats(emu.url, TOKEN)
        gw.shutdown()
    assert ok["status"] == "completed" and stats["counters"]["status_5xx"] >= 1
    assert res["status"] == "failed" and "not submitted" in res["reason"]
    assert stats["duplicates"] == {}


def test_token_never_reaches_ledger_logs_or_outputs(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    circ = [{"gate": "gpi2", "target": 0, "phase": 0.0}]
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.05, fault_prob=0.3, rate_limit_prob=0.3, seed=2)) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url))
        for k in range(4):
            gw.submit(f"k{k}", "t", 10, circuits=[circ], qubits=1)
        results = [gw.wait(f"k{k}", 30) for k in range(4)]
        print(gw.status(), results)
        gw.shutdown()
    assert all(r["status"] == "completed" for r in results)
    captured = capsys.readouterr()
    blobs = [captured.out, captured.err, caplog.text]
    for root, _, files in os.walk(tmp_path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                blobs.append(fh.read().decode(errors="replace"))
    assert any('"type":"submitted"' in b for b in blobs)  # the ledger was read
    assert not any(TOKEN in b for b in blobs)


def test_ledger_ignores_a_torn_last_line_and_rejects_another_campaign(tmp_path):
    path = tmp_path / "qpu" / "ledger.jsonl"
    led = Ledger(str(path))
    led.append({"type": "header", "campaign": "other", "run": "abc", "t": 0.0})
    led.close()
    with open(path, "a") as fh:
        fh.write('{"type": "intent", "job": "x"')  # crash mid-write
    assert Ledger.read(str(path)) == [{"type": "header", "campaign": "other", "run": "abc", "t": 0.0}]
    with pytest.raises(ValueError, match="belongs to campaign 'other'"):
        QPUGateway(_cfg(tmp_path, "http://127.0.0.1:9/v0.4"))

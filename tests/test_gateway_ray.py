"""The gateway as a named Ray actor: SIGKILL mid-flight, and the smoke QPU campaign end to end on the emulator."""
from __future__ import annotations

import glob
import json
import os
import signal
import threading
import time

import pytest
import torch

from qgan.ionq.emulator import Emulator, EmulatorConfig, fetch_stats
from qgan.quantum import Ansatz

TOKEN = "gw-ray-token-9e8d7c6b5a"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session():
    import ray

    old = os.environ.get("IONQ_API_KEY")
    os.environ["IONQ_API_KEY"] = TOKEN  # before ray.init: the actor inherits it from the raylet's environment
    import shutil
    import tempfile

    temp = tempfile.mkdtemp(prefix="qgw", dir="/tmp")  # short: Ray's unix socket paths must stay < 108 chars
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="qgan-gateway-test",
             _temp_dir=temp, log_to_driver=True)
    try:
        yield temp
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        if old is None:
            os.environ.pop("IONQ_API_KEY", None)
        else:
            os.environ["IONQ_API_KEY"] = old


def _files_text(*roots: str) -> list[tuple[str, str]]:
    out = []
    for root in roots:
        for path in glob.glob(os.path.join(root, "**", "*"), recursive=True):
            if os.path.isfile(path) and not os.path.islink(path):
                try:
                    with open(path, "rb") as fh:
                        out.append((path, fh.read().decode(errors="replace")))
                except OSError:
                    continue
    return out


def test_sigkill_of_the_gateway_actor_resumes_in_flight_jobs_without_duplicates(ray_session, tmp_path, capfd):
    import ray

    from sweeps.gateway import GatewayBackend, GatewayConfig, start_gateway

    with Emulator(EmulatorConfig(token=TOKEN, latency=1.5, rate_limit_prob=0.2, retry_after=0.1)) as emu:
        cfg = GatewayConfig(campaign="killtest", ledger_dir=str(tmp_path / "qpu"), url=emu.url,
                            max_jobs_per_period=20, period_s=2.0, max_in_flight=6, poll_interval_s=0.1,
                            backoff_base_s=0.05, backoff_cap_s=0.5)
        gw = start_gateway(cfg)
        pid0 = ray.get(gw.ping.remote())["pid"]
        out: dict = {}

        def trial(tid: str):
            try:
                a = Ansatz(3, connectivity="full")
                g = torch.Generator().manual_seed(int(tid[1:]))
                be = GatewayBackend("killtest", tid, wait_s=0.5)
                for _ in range(2):
                    be.sample(a, a.random_start(g), 30, g)
                out[tid] = be.circuit_calls
            except Exception as exc:  # noqa: BLE001
                out[tid] = repr(exc)

        threads = [threading.Thread(target=trial, args=(f"t{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while time.time() < deadline:  # kill only once jobs are really in flight on the API
            st = ray.get(gw.status.remote())
            if st["in_flight"] >= 3:
                break
            time.sleep(0.05)
        assert st["in_flight"] >= 3
        os.kill(pid0, signal.SIGKILL)
        for t in threads:
            t.join(timeout=120)
        status = ray.get(gw.status.remote())
        pid1 = ray.get(gw.ping.remote())["pid"]
        stats = fetch_stats(emu.url, TOKEN)
        ray.kill(gw, no_restart=True)
    msg = (f"kill: in flight at kill {st['in_flight']}, restarts {status['stats']['restarts']}, resumed polling "
          f"{status['stats']['resumed_polling']}, found by name {status['stats']['reconciled_found']}, emulator "
          f"submissions {stats['counters']['submitted']}, duplicates {stats['duplicates']}, jobs {status['jobs']}")
    assert out == {f"t{i}": 2 for i in range(8)}, out
    assert pid1 != pid0 and status["stats"]["restarts"] == 1
    assert status["stats"]["resumed_polling"] >= 1
    assert status["jobs"] == {"completed": 16}
    assert stats["counters"]["submitted"] == 16 and stats["duplicates"] == {}
    captured = capfd.readouterr()
    texts = _files_text(str(tmp_path), ray_session) + [("captured", captured.out + captured.err)]
    assert any("ledger.jsonl" in p for p, _ in texts)
    leaks = [p for p, text in texts if TOKEN in text]
    print(msg + f", files checked for the token {len(texts)}, leaks {len(leaks)}")
    assert leaks == []


def test_smoke_qpu_campaign_runs_end_to_end_on_the_emulator(ray_session, tmp_path, capfd):
    from sweeps import qpu_campaign

    rc = qpu_campaign.main(["--preset", "smoke", "--phase", "ferrite", "--backend", "emulator", "--storage",
                            str(tmp_path), "--name", "smoke", "--max-jobs-per-minute", "600",
                            "--budget-shots", "100000", "--max-failures", "0"])
    captured = capfd.readouterr()
    assert rc == 0, captured.out[-3000:] + captured.err[-3000:]
    run = tmp_path / "smoke"
    summaries = {p.parent.name: json.loads(p.read_text()) for p in run.glob("trials/*/summary.json")}
    assert len(summaries) == 2 and all(s["status"] == "completed" for s in summaries.values()), summaries
    qcbm = next(s for k, s in summaries.items() if "-qcbm-" in k)
    plan = json.loads((run / "qpu_campaign.json").read_text())["plans"][0]
    assert qcbm["circuit_calls"] == plan["circuits"] == 1 + 2 * (2 * 3 + 1)
    records = [json.loads(line) for line in (run / "qpu" / "ledger.jsonl").read_text().splitlines()]
    submitted = [r["job"] for r in records if r["type"] == "submitted"]
    results = [r for r in records if r["type"] == "result"]
    # an SPSA iteration's 2 circuits are one multi-circuit job: 1 + 2 x (3 + 1) jobs
    assert plan["jobs"] == 9 and len(submitted) == len(set(submitted)) == plan["jobs"]
    assert len(results) == plan["jobs"] and all(r["status"] == "completed" for r in results)
    assert sum(r["circuits"] for r in results) == plan["circuits"]
    qpu = json.loads(next(run.glob("trials/*-qcbm-*/qpu.json")).read_text())
    assert qpu["jobs"] == 9 and qpu["circuits"] == plan["circuits"] and qpu["debias"] == [False]
    leaks = [p for p, text in _files_text(str(tmp_path)) if TOKEN in text]
    assert leaks == [] and TOKEN not in captured.out + captured.err


def test_starting_a_campaign_gateway_again_with_a_new_budget_replaces_it_on_the_same_ledger(ray_session, tmp_path):
    import ray

    from sweeps.gateway import GatewayConfig, start_gateway

    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0)) as emu:
        cfg = GatewayConfig(campaign="rebudget", ledger_dir=str(tmp_path / "qpu"), url=emu.url, budget_shots=10,
                            poll_interval_s=0.05)
        gw = start_gateway(cfg)
        circ = [{"gate": "gpi2", "target": 0, "phase": 0.0}]
        assert ray.get(gw.submit.remote("a", "t", 10, circuits=[circ], qubits=1))["status"] == "pending"
        assert ray.get(gw.submit.remote("b", "t", 10, circuits=[circ], qubits=1))["status"] == "budget_exceeded"
        run = ray.get(gw.ping.remote())["run"]
        # placed on the driver's node (hard node affinity): the key set where the campaign runs is the one it reads
        node = ray.get(gw.__ray_call__.remote(lambda self: __import__("ray").get_runtime_context().get_node_id()))
        assert node == ray.get_runtime_context().get_node_id()
        assert start_gateway(cfg) is not None and ray.get(gw.status.remote())["budget_shots"] == 10  # same: kept
        gw2 = start_gateway(GatewayConfig(**{**cfg.to_dict(), "budget_shots": 20}))
        st = ray.get(gw2.status.remote())
        assert st["budget_shots"] == 20 and st["run"] == run and st["used_shots"] == 10
        assert ray.get(gw2.submit.remote("b", "t", 10, circuits=[circ], qubits=1))["status"] in ("pending",
                                                                                                  "completed")
        assert ray.get(gw2.wait.remote("a", 30))["status"] == "completed"
        assert ray.get(gw2.wait.remote("b", 30))["status"] == "completed"
        ray.kill(gw2, no_restart=True)


def test_a_trial_gives_up_with_a_clear_error_when_no_gateway_runs(ray_session):
    from sweeps.gateway import GatewayBackend, QPUJobFailed

    be = GatewayBackend("no-such-campaign", "t0", wait_s=0.1, max_unreachable=2)
    a = Ansatz(2)
    with pytest.raises(QPUJobFailed, match="no-such-campaign.*unreachable"):
        be.sample(a, a.uniform_start(), 10, torch.Generator().manual_seed(0))

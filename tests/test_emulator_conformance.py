"""The emulator against IonQ's v0.4 API as documented (docs.ionq.com/api-reference/v0.4: the job object of
``GET /jobs``, 201 on job creation, ``{statusCode, error, message}`` errors, ``failure: {code, message}``, the
listing's filters) and as qiskit-ionq's own test fixtures shape it (multi-circuit parents with ``child_job_ids``
and ``.../probabilities/aggregated`` keyed by child id, per-child ``results.shots``, ``GET /jobs/estimate``).
The expected shapes are written out here from those documents; the client is the stock qiskit-ionq one."""
from __future__ import annotations

import json
import time
import warnings
from datetime import datetime

import pytest
import requests

from qgan.ionq import IonQConnection, JobStatus
from qgan.ionq.client import _job_time, failure_reason
from qgan.ionq.emulator import Emulator, EmulatorConfig

TOKEN = "conformance-token-7d41e0b2"
H = {"Authorization": f"apiKey {TOKEN}", "Content-Type": "application/json"}

# The v0.4 job object (docs: "Get jobs", example response): every field is present, null when not applicable.
V04_JOB_FIELDS = {"id", "status", "type", "backend", "dry_run", "submitter_id", "project_id", "parent_job_id",
                  "session_id", "metadata", "name", "submitted_at", "started_at", "completed_at",
                  "predicted_execution_duration_ms", "predicted_wait_time_ms", "execution_duration_ms", "shots",
                  "noise", "failure", "settings", "stats", "results", "output"}
V04_STATS_FIELDS = {"qubits", "circuits", "gate_counts"}
V03_ONLY_FIELDS = {"request", "target", "gate_counts", "response", "children", "results_url", "execution_time"}
ERROR_FIELDS = {"statusCode", "error", "message"}


def _body(name="j", shots=10, circuit=None):
    return json.dumps({"type": "ionq.circuit.v1", "backend": "qpu.aria-2", "shots": shots, "name": name,
                       "input": {"gateset": "native", "qubits": 2,
                                 "circuit": circuit or [{"gate": "gpi", "target": 0, "phase": 0.0}]}})


def _multi_body(name="m", shots=20):
    return json.dumps({"type": "ionq.multi-circuit.v1", "backend": "qpu.aria-2", "shots": shots, "name": name,
                       "input": {"gateset": "native", "qubits": 2, "circuits": [
                           {"name": "a", "circuit": [{"gate": "gpi", "target": 0, "phase": 0.0}]},
                           {"name": "b", "circuit": [{"gate": "gpi", "target": 1, "phase": 0.0}]}]}})


def _circuits():
    from qiskit import QuantumCircuit
    from qiskit_ionq import GPIGate

    out = []
    for q in (0, 1):
        qc = QuantumCircuit(2, 2, name=f"x{q}")
        qc.append(GPIGate(0.0), [q])
        qc.measure([0, 1], [0, 1])
        out.append(qc)
    return out


def test_job_creation_answers_201_and_the_job_object_has_every_v04_field():
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.2, ideal=True)) as emu:
        res = requests.post(emu.url + "/jobs", data=_body(), headers=H, timeout=10)
        assert res.status_code == 201 and set(res.json()) == {"id", "status", "session_id"}
        job_id = res.json()["id"]
        running = requests.get(f"{emu.url}/jobs/{job_id}", headers=H, timeout=10).json()
        time.sleep(0.3)
        done = requests.get(f"{emu.url}/jobs/{job_id}", headers=H, timeout=10).json()
    for job in (running, done):
        assert V04_JOB_FIELDS <= set(job) and not (V03_ONLY_FIELDS & set(job)), set(job) ^ V04_JOB_FIELDS
        assert V04_STATS_FIELDS <= set(job["stats"]) and set(job["stats"]["gate_counts"]) == {"1q", "2q"}
        assert job["session_id"] is None and job["parent_job_id"] is None and job["dry_run"] is False
        datetime.fromisoformat(job["submitted_at"].replace("Z", "+00:00"))
        assert _job_time(job) == pytest.approx(time.time(), abs=30)
    assert running["status"] in ("ready", "started") and running["results"] is None
    assert running["completed_at"] is None and running["failure"] is None
    assert done["status"] == "completed" and done["completed_at"] and done["started_at"]
    assert done["results"]["probabilities"]["url"] == f"/v0.4/jobs/{job_id}/results/probabilities"
    assert set(done["results"]) == {"probabilities", "histogram", "shots"}
    assert done["settings"] == {"error_mitigation": {"debiasing": False}}  # native gates: off unless asked


def test_errors_are_statuscode_error_message_and_unfinished_results_are_404():
    from qiskit_ionq.exceptions import IonQAPIError

    with Emulator(EmulatorConfig(token=TOKEN, latency=30.0)) as emu:
        job_id = requests.post(emu.url + "/jobs", data=_body(), headers=H, timeout=10).json()["id"]
        cases = [requests.get(f"{emu.url}/jobs/nope", headers=H, timeout=10),
                 requests.get(f"{emu.url}/jobs/{job_id}/results/probabilities", headers=H, timeout=10),
                 requests.post(emu.url + "/jobs", data=_body(shots=0), headers=H, timeout=10),
                 requests.get(f"{emu.url}/jobs", headers={"Authorization": "apiKey wrong-key-123"}, timeout=10)]
    assert [r.status_code for r in cases] == [404, 404, 400, 401]
    for r in cases:
        body = r.json()
        assert set(body) == ERROR_FIELDS and body["statusCode"] == r.status_code and body["message"]
        err = IonQAPIError.from_response(r)  # qiskit-ionq reads the documented format
        assert err.error_type == body["error"] and err.message == body["message"]
    assert cases[0].json()["error"] == "Not Found" and cases[2].json()["error"] == "Bad Request"


def test_multi_circuit_jobs_have_child_jobs_and_aggregated_results_keyed_by_child_id():
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0, ideal=True)) as emu:
        res = requests.post(emu.url + "/jobs", data=_multi_body(), headers=H, timeout=10)
        assert res.status_code == 201
        parent = requests.get(f"{emu.url}/jobs/{res.json()['id']}", headers=H, timeout=10).json()
        agg = requests.get(emu.url.replace("/v0.4", "") + parent["results"]["probabilities"]["url"], headers=H,
                           timeout=10).json()
        kids = [requests.get(f"{emu.url}/jobs/{c}", headers=H, timeout=10).json() for c in parent["child_job_ids"]]
        listed = requests.get(emu.url + "/jobs", params={"parent_job_id": parent["id"]}, headers=H,
                              timeout=10).json()["jobs"]
        shots = requests.get(emu.url.replace("/v0.4", "") + kids[1]["results"]["shots"]["url"], headers=H,
                             timeout=10).json()
    assert parent["type"] == "ionq.multi-circuit.v1" and parent["stats"]["circuits"] == 2
    assert parent["results"]["probabilities"]["url"].endswith("/results/probabilities/aggregated")
    assert list(agg) == parent["child_job_ids"] and agg[parent["child_job_ids"][0]] == {"1": 1.0}
    assert agg[parent["child_job_ids"][1]] == {"2": 1.0}
    assert all(k["parent_job_id"] == parent["id"] and k["status"] == "completed" for k in kids)
    assert sorted(j["id"] for j in listed) == sorted(parent["child_job_ids"])
    assert shots == [2] * 20


def test_stock_qiskit_ionq_runs_a_list_of_circuits_as_one_job_with_shot_memory(monkeypatch):
    from qiskit_ionq import ErrorMitigation, IonQProvider

    with Emulator(EmulatorConfig(token=TOKEN, latency=0.1, ideal=True)) as emu:
        monkeypatch.setenv("IONQ_API_URL", emu.url)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            backend = IonQProvider(TOKEN, url=emu.url).get_backend("qpu.aria-2", gateset="native")
            job = backend.run(_circuits(), shots=50, memory=True, error_mitigation=ErrorMitigation.NO_DEBIASING)
            result = job.result(wait=0.05)
            single = backend.run(_circuits()[0], shots=30, memory=True).result(wait=0.05)
        assert emu.state.stats()["jobs"] == 2  # one multi-circuit job, one single-circuit job
    assert result.get_counts(0) == {"01": 50} and result.get_counts(1) == {"10": 50}
    assert result.get_memory(0) == ["01"] * 50 and result.get_memory(1) == ["10"] * 50
    assert single.get_memory() == ["01"] * 30


def test_estimate_endpoint_answers_qiskit_ionqs_client():
    from qiskit_ionq.ionq_client import IonQClient

    cfg = EmulatorConfig(token=TOKEN, price_1q=0.001, price_2q=0.01, job_minimum=5.0, job_minimum_debias=50.0)
    with Emulator(cfg) as emu:
        client = IonQClient(TOKEN, emu.url)
        est = client.estimate_job(backend="qpu.aria-2", oneq_gates=10, twoq_gates=5, qubits=3, shots=1000)
        low = client.estimate_job(backend="qpu.aria-2", oneq_gates=1, twoq_gates=0, qubits=1, shots=10)
        deb = client.estimate_job(backend="qpu.aria-2", oneq_gates=1, twoq_gates=0, qubits=1, shots=1000,
                                  error_mitigation=True)
    assert est.cost == pytest.approx(1000 * (10 * 0.001 + 5 * 0.01)) and est.cost_unit == "usd"
    assert est.shots == 1000 and est.oneq_gates == 10 and est.exec_time > 0
    assert low.cost == pytest.approx(5.0) and deb.cost == pytest.approx(50.0) and deb.error_mitigation is True


def test_listing_filters_target_status_and_ids():
    with Emulator(EmulatorConfig(token=TOKEN, latency=30.0)) as emu:
        a = requests.post(emu.url + "/jobs", data=_body("a"), headers=H, timeout=10).json()["id"]
        sim = json.loads(_body("s"))
        sim["backend"] = "simulator"
        s = requests.post(emu.url + "/jobs", data=json.dumps(sim), headers=H, timeout=10).json()["id"]
        requests.put(f"{emu.url}/jobs/{a}/status/cancel", headers=H, timeout=10)

        def ids(**params):
            return sorted(j["id"] for j in requests.get(emu.url + "/jobs", params=params, headers=H,
                                                        timeout=10).json()["jobs"])

        assert ids(target="simulator") == [s] and ids(target="qpu.aria-2,simulator") == sorted([a, s])
        assert ids(status="canceled") == [a] and ids(ids=[s]) == [s] and ids(name="a") == sorted([a, s])


def test_the_client_reads_v04_and_older_failure_fields_and_the_gateway_reports_them(tmp_path, monkeypatch):
    v04 = {"status": "failed", "failure": {"code": "QuantumComputerError", "message": "ion chain lost"}}
    v03 = {"status": "failed", "failure": {"code": "internal_error", "error": "An error occurred!"}}
    assert failure_reason(v04) == "QuantumComputerError: ion chain lost"
    assert JobStatus("failed", v03).failure_reason == "internal_error: An error occurred!"
    assert failure_reason({"status": "failed", "failure": None}) == "no failure reason given"

    from sweeps.gateway import GatewayConfig, QPUGateway

    monkeypatch.setenv("IONQ_API_KEY", TOKEN)
    with Emulator(EmulatorConfig(token=TOKEN, latency=30.0)) as emu:
        gw = QPUGateway(GatewayConfig(campaign="c", ledger_dir=str(tmp_path), url=emu.url, poll_interval_s=0.05))
        gw.submit("k", "t", 10, circuits=[[{"gate": "gpi", "target": 0, "phase": 0.0}]], qubits=1)
        deadline = time.time() + 20
        while not emu.state.jobs and time.time() < deadline:
            time.sleep(0.02)
        job = next(iter(emu.state.jobs.values()))
        job.failure = dict(v04["failure"])
        job.status = "failed"
        res = gw.wait("k", 20)
        gw.shutdown()
    assert res["status"] == "failed" and "QuantumComputerError: ion chain lost" in res["reason"]


def test_connection_submits_explicit_debiasing_and_multi_circuit_jobs(monkeypatch):
    monkeypatch.setenv("IONQ_API_KEY", TOKEN)
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0, ideal=True)) as emu:
        conn = IonQConnection(url=emu.url)
        one = conn.submit(_circuits()[0], 600, "one", debias=True)
        two = conn.submit(_circuits(), 100, "two", debias=False)
        st1, st2 = conn.status(one), conn.status(two)
        counts = conn.counts_list(st2, 100, 2)
    assert st1.raw["settings"]["error_mitigation"] == {"debiasing": True}
    assert st2.raw["settings"]["error_mitigation"] == {"debiasing": False} and len(st2.children) == 2
    assert counts == [{1: 100}, {2: 100}]

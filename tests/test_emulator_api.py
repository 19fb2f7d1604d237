"""The local IonQ API emulator, driven by the stock qiskit-ionq client and by raw HTTP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

import pytest
import requests

from qgan.ionq.emulator import Emulator, EmulatorConfig, fetch_stats

TOKEN = "emu-test-token-5b1e9c"


def _bell_like():
    from qiskit import QuantumCircuit
    from qiskit_ionq import GPIGate, MSGate

    qc = QuantumCircuit(3, 3)
    qc.append(GPIGate(0.0), [0])                 # X on qubit 0 -> bit 0 always 1
    qc.append(MSGate(0.0, 0.0, 0.25), [1, 2])    # fully entangling: qubits 1, 2 in 00 or 11
    qc.measure(range(3), range(3))
    return qc


def _job_body(name: str, shots: int = 10) -> str:
    return json.dumps({"type": "ionq.circuit.v1", "backend": "qpu.aria-2", "shots": shots, "name": name,
                       "input": {"gateset": "native", "qubits": 1,
                                 "circuit": [{"gate": "gpi", "target": 0, "phase": 0.0}]}})


def _headers(token: str = TOKEN) -> dict:
    return {"Authorization": f"apiKey {token}", "Content-Type": "application/json"}


@pytest.mark.parametrize("ideal", [True, False])
def test_stock_qiskit_ionq_client_runs_native_circuits_on_the_emulator(ideal, monkeypatch):
    from qiskit_ionq import IonQProvider

    with Emulator(EmulatorConfig(token=TOKEN, latency=0.2, ideal=ideal)) as emu:
        monkeypatch.setenv("IONQ_API_URL", emu.url)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            backend = IonQProvider(TOKEN, url=emu.url).get_backend("qpu.aria-2", gateset="native")
            job = backend.run(_bell_like(), shots=400, name="stock-client")
            counts = job.result(wait=0.1).get_counts()
        assert sum(counts.values()) == 400
        good = counts.get("001", 0) + counts.get("111", 0)
        assert counts.get("001", 0) > 100 and counts.get("111", 0) > 100
        if ideal:
            assert good == 400
        else:  # Aria-2-like noise: a few wrong outcomes, most right
            assert 360 <= good < 400
        assert fetch_stats(emu.url, TOKEN)["submissions"] == {"stock-client": 1}


def test_ideal_cloud_simulator_returns_exact_probabilities(monkeypatch):
    from qiskit_ionq import IonQProvider

    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0)) as emu:
        monkeypatch.setenv("IONQ_API_URL", emu.url)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sim = IonQProvider(TOKEN, url=emu.url).get_backend("simulator", gateset="native")
            probs = sim.run(_bell_like(), shots=100).result(wait=0.05).get_probabilities()
        assert probs == pytest.approx({"001": 0.5, "111": 0.5})


def test_emulator_requires_the_token_and_never_echoes_it():
    wrong = "wrong-token-ab12cd34ef"
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0)) as emu:
        for headers in ({}, _headers(wrong)):
            res = requests.post(emu.url + "/jobs", data=_job_body("x"), headers=headers, timeout=10)
            assert res.status_code == 401
            assert wrong not in res.text and TOKEN not in res.text
        res = requests.get(emu.url.replace("/v0.4", "") + "/_emulator/stats", headers=_headers(wrong), timeout=10)
        assert res.status_code == 401
        ok = requests.post(emu.url + "/jobs", data=_job_body("x"), headers=_headers(), timeout=10)
        assert ok.status_code == 201 and TOKEN not in ok.text
        assert emu.state.counters["unauthorized"] == 3


def test_rate_limit_answers_429_with_retry_after():
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0, rate_limit=2, rate_window=60.0, retry_after=7)) as emu:
        codes = []
        for i in range(3):
            res = requests.post(emu.url + "/jobs", data=_job_body(f"j{i}"), headers=_headers(), timeout=10)
            codes.append(res.status_code)
        assert codes == [201, 201, 429]
        assert res.headers["Retry-After"] == "7"
        stats = fetch_stats(emu.url, TOKEN)
        assert stats["submissions"] == {"j0": 1, "j1": 1}
        assert stats["counters"]["status_429"] == 1


def test_every_kth_request_fails_and_duplicate_submissions_are_counted():
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0, fault_every=3)) as emu:
        codes = [requests.post(emu.url + "/jobs", data=_job_body("same"), headers=_headers(), timeout=10).status_code
                 for _ in range(6)]
        assert codes == [201, 201, 503, 201, 201, 503]
        stats = fetch_stats(emu.url, TOKEN)  # the stats request itself is not fault-injected
        assert stats["submissions"] == {"same": 4}
        assert stats["duplicates"] == {"same": 4}


def test_cancel_listing_and_the_ids_filter():
    with Emulator(EmulatorConfig(token=TOKEN, latency=30.0)) as emu:
        ids = [requests.post(emu.url + "/jobs", data=_job_body(f"name-{i}"), headers=_headers(),
                             timeout=10).json()["id"] for i in range(3)]
        res = requests.put(f"{emu.url}/jobs/{ids[1]}/status/cancel", headers=_headers(), timeout=10)
        assert res.json()["status"] == "canceled"
        assert requests.get(f"{emu.url}/jobs/{ids[0]}", headers=_headers(), timeout=10).json()["status"] in (
            "submitted", "ready")
        # newest first, one per page, following the cursor
        seen, cursor = [], None
        for _ in range(5):
            params = {"limit": 1, **({"next": cursor} if cursor else {})}
            body = requests.get(emu.url + "/jobs", params=params, headers=_headers(), timeout=10).json()
            seen += [j["name"] for j in body["jobs"]]
            cursor = body["next"]
            if not cursor:
                break
        assert seen == ["name-2", "name-1", "name-0"]
        body = requests.get(emu.url + "/jobs", params={"ids": [ids[0], ids[2]]}, headers=_headers(),
                            timeout=10).json()
        assert sorted(j["id"] for j in body["jobs"]) == sorted([ids[0], ids[2]])
        body = requests.get(emu.url + "/jobs", params={"ids": f"{ids[1]},{ids[2]}", "status": "canceled"},
                            headers=_headers(), timeout=10).json()
        assert [j["id"] for j in body["jobs"]] == [ids[1]]


def test_module_runs_as_a_server_on_the_given_port(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    counters = tmp_path / "counters.json"
    env = {**os.environ, "IONQ_EMULATOR_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "qgan.ionq.emulator", "--port", str(port), "--latency", "0",
                             "--counters-file", str(counters)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}/v0.4" in line and TOKEN not in line
        url = f"http://127.0.0.1:{port}/v0.4"
        res = requests.post(url + "/jobs", data=_job_body("cli"), headers=_headers(), timeout=10)
        assert res.status_code == 201
        deadline = time.time() + 10
        while not counters.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert json.loads(counters.read_text())["submissions"] == {"cli": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)

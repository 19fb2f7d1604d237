"""How the gateway sends jobs (one process, no Ray): multi-circuit jobs, explicit debiasing, cost from IonQ's
estimate, recovery that does not depend on the listing's order, and a job store that survives the emulator."""
from __future__ import annotations

import json
import threading
import time

import pytest

from qgan.ionq import IonQConnection
from qgan.ionq.client import LookupIncomplete
from qgan.ionq.emulator import Emulator, EmulatorConfig, fetch_stats
from sweeps.gateway import GatewayConfig, Ledger, QPUGateway, ledger_summary

TOKEN = "gw-jobs-token-51f0c2aa"
X = [{"gate": "gpi", "target": 0, "phase": 0.0}]            # |0> -> |1>: basis index 1
I = [{"gate": "gpi2", "target": 0, "phase": 0.0}, {"gate": "gpi2", "target": 0, "phase": 0.5}]  # identity: 0


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv("IONQ_API_KEY", TOKEN)


def _cfg(tmp_path, url, **kw) -> GatewayConfig:
    base = dict(campaign="jobs", ledger_dir=str(tmp_path / "qpu"), url=url, max_jobs_per_period=0,
                max_in_flight=8, poll_interval_s=0.05, backoff_base_s=0.05, backoff_cap_s=0.3)
    base.update(kw)
    return GatewayConfig(**base)


def _records(tmp_path, kind):
    return [r for r in Ledger.read(str(tmp_path / "qpu" / "ledger.jsonl")) if r["type"] == kind]


def test_a_request_goes_out_as_multi_circuit_jobs_with_counts_in_circuit_order(tmp_path):
    circuits = [X, I, X, X, I]
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.05, ideal=True)) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url, max_circuits_per_job=2))
        gw.submit("k", "t", 20, circuits=circuits, qubits=1)
        res = gw.wait("k", 30)
        stats = fetch_stats(emu.url, TOKEN)
        status = gw.status()
        jobs = [j for j in (requests_get(emu, "/jobs", {"limit": 100})["jobs"]) if j["parent_job_id"] is None]
        gw.shutdown()
    assert res["status"] == "completed"
    assert [max(c, key=c.get) for c in res["counts"]] == ["1", "0", "1", "1", "0"]
    assert stats["counters"]["submitted"] == 3 and stats["counters"]["circuits"] == 5 and stats["duplicates"] == {}
    assert sorted(j["type"] for j in jobs) == ["ionq.circuit.v1", "ionq.multi-circuit.v1", "ionq.multi-circuit.v1"]
    intents, results = _records(tmp_path, "intent"), _records(tmp_path, "result")
    assert [len(r["circuits"]) for r in intents] == [2, 2, 1] and [r["first"] for r in intents] == [0, 2, 4]
    assert sorted(len(r["children"] or []) for r in results) == [0, 2, 2]  # child ids of each multi-circuit job
    assert status["used_shots"] == 5 * 20 and status["circuits"] == 5 and status["jobs"] == {"completed": 3}


def requests_get(emu, path, params=None):
    import requests

    res = requests.get(emu.url + path, params=params, headers={"Authorization": f"apiKey {TOKEN}"}, timeout=10)
    res.raise_for_status()
    return res.json()


@pytest.mark.parametrize("debias", [False, True])
def test_debias_is_sent_with_every_job_and_recorded(tmp_path, debias):
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0, ideal=True)) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url, debias=debias, max_circuits_per_job=2))
        gw.submit("k", "t", 600, circuits=[X, X, I], qubits=1)
        assert gw.wait("k", 30)["status"] == "completed"
        if debias:  # IonQ cannot debias fewer than 500 shots: refused before anything is sent
            low = gw.submit("low", "t", 100, circuits=[X], qubits=1)
            assert low["status"] == "failed" and "debias needs at least 500 shots" in low["reason"]
        jobs = [j for j in requests_get(emu, "/jobs", {"limit": 100})["jobs"] if j["parent_job_id"] is None]
        gw.shutdown()
    assert len(jobs) == 2 and all(j["settings"]["error_mitigation"] == {"debiasing": debias} for j in jobs)
    assert all(r["debias"] is debias for r in _records(tmp_path, "intent"))
    starts = [r for r in Ledger.read(str(tmp_path / "qpu" / "ledger.jsonl")) if r["type"] == "header"]
    assert starts[0]["settings"]["debias"] is debias


def test_cost_comes_from_ionqs_estimate_with_the_per_job_minimum(tmp_path):
    emu_cfg = EmulatorConfig(token=TOKEN, latency=0.0, ideal=True, price_1q=0.001, price_2q=0.01, job_minimum=3.0)
    with Emulator(emu_cfg) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url, price_source="api", max_circuits_per_job=10, budget_cost=7.0))
        ok = gw.submit("a", "t", 100, circuits=[X, X], qubits=1)    # 2 x 100 x 0.001 = 0.2 -> minimum 3.0
        big = gw.submit("b", "t", 1000, circuits=[X] * 5, qubits=1)  # 5 x 1000 x 0.001 = 5.0; 3 + 5 > 7
        assert gw.wait("a", 30)["status"] == "completed"
        stats = fetch_stats(emu.url, TOKEN)
        gw.shutdown()
    assert ok["status"] == "pending" and big["status"] == "budget_exceeded" and "cost budget" in big["reason"]
    (intent,) = _records(tmp_path, "intent")
    assert intent["cost"] == pytest.approx(3.0) and intent["cost_source"] == "api" and intent["currency"] == "USD"
    assert stats["counters"]["estimates"] >= 2


def test_the_price_table_is_a_flagged_fallback_when_the_estimate_fails(tmp_path):
    cfg = _cfg(tmp_path, "http://127.0.0.1:9/v0.4", price_source="api", job_minimum=2.0, price_1q_gate_shot=0.001)
    gw = QPUGateway(cfg)
    cost, source = gw._price([(1, 0)], 1, 100)
    gw.shutdown()
    assert cost == pytest.approx(2.0) and source.startswith("table (fallback: estimate failed")


class _DiesMidSubmit:
    """A connection whose submit really POSTs, then never returns: the gateway 'dies' mid-call."""

    def __init__(self, url):
        self.inner = IonQConnection(url=url)
        self.hang = threading.Event()

    def submit(self, circuit, shots, name, debias=None):
        self.inner.submit(circuit, shots, name, debias=debias)
        self.hang.wait()
        raise RuntimeError("unreachable")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _noise_jobs(emu, count, name="other"):
    import requests

    body = json.dumps({"type": "ionq.circuit.v1", "backend": "qpu.aria-2", "shots": 1, "name": name,
                       "input": {"gateset": "native", "qubits": 1, "circuit": X}})
    for _ in range(count):
        requests.post(emu.url + "/jobs", data=body, headers={"Authorization": f"apiKey {TOKEN}"}, timeout=10)


def test_a_half_submitted_job_is_found_in_a_shuffled_listing_and_nothing_is_submitted_twice(tmp_path):
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.5, ideal=True, list_order="shuffled", seed=3)) as emu:
        _noise_jobs(emu, 40)
        cfg = _cfg(tmp_path, emu.url, max_circuits_per_job=3)
        gw1 = QPUGateway(cfg)
        dying = _DiesMidSubmit(emu.url)
        gw1._conn = dying
        gw1.submit("r", "t", 10, circuits=[X, I, X], qubits=1)
        deadline = time.time() + 20
        while fetch_stats(emu.url, TOKEN)["counters"]["submitted"] < 41 and time.time() < deadline:
            time.sleep(0.02)
        gw1._stop.set()  # killed during the POST: the ledger has an attempt and no id
        _noise_jobs(emu, 40)  # more jobs after it: in a newest-first listing it would now be on a later page
        for job in list(emu.state.jobs.values()):  # and the noise looks old: an order-based walk would stop
            if job.name == "other":
                job.submitted -= 7200
        # a page of 7: the listing has 12 pages, shuffled; the job is found wherever it is
        gw2 = QPUGateway(cfg, connection_factory=lambda: _SmallPages(IonQConnection(url=emu.url), 7))
        res = gw2.wait("r", 30)
        stats = fetch_stats(emu.url, TOKEN)
        status = gw2.status()
        gw2.shutdown()
        dying.hang.set()
    assert res["status"] == "completed" and [max(c, key=c.get) for c in res["counts"]] == ["1", "0", "1"]
    ours = {k: v for k, v in stats["submissions"].items() if k != "other"}
    assert list(ours.values()) == [1] and stats["duplicates"] == {"other": 80}
    assert status["stats"]["reconciled_found"] == 1 and status["stats"]["submitted"] == 0


class _SmallPages:
    def __init__(self, conn, limit):
        self.conn, self.limit = conn, limit

    def find_by_names(self, names, since=None, **kw):
        return self.conn.find_by_names(names, since=since, page_limit=self.limit, max_pages=kw.get("max_pages", 50))

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_an_incomplete_search_never_leads_to_a_resubmission(tmp_path):
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0, ideal=True)) as emu:
        _noise_jobs(emu, 10)
        conn = IonQConnection(url=emu.url)
        with pytest.raises(LookupIncomplete):
            conn.find_by_names(["nope"], page_limit=3, max_pages=2)
        assert conn.find_by_names(["nope"], page_limit=3, max_pages=10) == {"nope": []}

        class Truncated(_SmallPages):
            def find_by_names(self, names, since=None, **kw):
                return self.conn.find_by_names(names, since=since, page_limit=3, max_pages=2)

        cfg = _cfg(tmp_path, emu.url, max_submit_attempts=3)
        ledger = Ledger(str(tmp_path / "qpu" / "ledger.jsonl"))
        gw = QPUGateway(cfg)
        gw.submit("r", "t", 10, circuits=[X], qubits=1)
        gw.wait("r", 30)
        gw.shutdown()
        # a restart that finds an attempt without an id and cannot finish its search: gives up, sends nothing
        name = _records(tmp_path, "intent")[0]["job"]
        ledger.append({"type": "intent", "job": name + "x", "request": "r2", "trial": "t", "index": 0, "first": 0,
                       "hashes": [], "shots": 10, "qubits": 1, "gates": [[1, 0]], "cost": 0.0, "circuits": [X],
                       "t": time.time()},
                      {"type": "request", "key": "r2", "trial": "t", "jobs": [name + "x"], "shots": 10,
                       "t": time.time()},
                      {"type": "attempt", "job": name + "x", "t": time.time()})
        ledger.close()
        before = fetch_stats(emu.url, TOKEN)["counters"]["submitted"]
        gw2 = QPUGateway(cfg, connection_factory=lambda: Truncated(IonQConnection(url=emu.url), 3))
        res = gw2.wait("r2", 30)
        used = gw2.status()["used_shots"]
        gw2.shutdown()
        after = fetch_stats(emu.url, TOKEN)["counters"]["submitted"]
    assert res["status"] == "failed" and "submission outcome unknown" in res["reason"]
    assert after == before and used == 20  # its shots count as spent: it may exist


def test_a_job_the_api_forgot_after_accepting_it_fails_and_is_not_resubmitted(tmp_path):
    import requests

    with Emulator(EmulatorConfig(token=TOKEN, latency=30.0, ideal=True)) as emu:
        gw = QPUGateway(_cfg(tmp_path, emu.url))
        gw.submit("r", "t", 10, circuits=[X], qubits=1)
        deadline = time.time() + 20
        while not _records(tmp_path, "submitted") and time.time() < deadline:
            time.sleep(0.02)
        job_id = _records(tmp_path, "submitted")[0]["id"]
        requests.delete(f"{emu.url}/jobs/{job_id}", headers={"Authorization": f"apiKey {TOKEN}"}, timeout=10)
        res = gw.wait("r", 30)
        used = gw.status()["used_shots"]
        gw.shutdown()
        submitted = fetch_stats(emu.url, TOKEN)["counters"]["submitted"]
    assert res["status"] == "failed" and "not resubmitted" in res["reason"] and "404" in res["reason"]
    assert submitted == 1 and used == 10


def test_the_emulator_job_store_survives_a_restart_and_the_gateway_resumes_on_it(tmp_path):
    store = str(tmp_path / "emu")
    cfg_emu = dict(token=TOKEN, latency=1.0, ideal=True, store_dir=store)
    emu = Emulator(EmulatorConfig(**cfg_emu)).start()
    cfg = _cfg(tmp_path, emu.url, max_circuits_per_job=2)
    gw1 = QPUGateway(cfg)
    gw1.submit("r", "t", 10, circuits=[X, I, X], qubits=1)
    deadline = time.time() + 20
    while len(_records(tmp_path, "submitted")) < 2 and time.time() < deadline:
        time.sleep(0.02)
    gw1._stop.set()
    emu.stop()  # the emulator dies with the jobs in flight
    emu2 = Emulator(EmulatorConfig(**cfg_emu)).start()  # a new process on another port, the same store
    try:
        gw2 = QPUGateway(GatewayConfig(**{**cfg.to_dict(), "url": emu2.url}))
        res = gw2.wait("r", 30)
        status = gw2.status()
        gw2.shutdown()
        stats = fetch_stats(emu2.url, TOKEN)
    finally:
        emu2.stop()
    assert res["status"] == "completed" and [max(c, key=c.get) for c in res["counts"]] == ["1", "0", "1"]
    assert stats["counters"]["submitted"] == 2 and stats["duplicates"] == {}
    assert status["stats"]["resumed_polling"] == 2
    summary = ledger_summary(str(tmp_path / "qpu" / "ledger.jsonl"))
    assert summary["used_shots"] == 30 and summary["double_submitted"] == {} and summary["starts"] == 1

"""Submitting a job exactly once: submit; if the outcome is uncertain, find the job by its name and adopt it.

The policy lives in `qgan.ionq.reconcile.submit_reconciled`; it is tested here on a fake connection, and so are
its two callers, `IonQBackend` and the QPU gateway, so that both keep following it.
"""
from __future__ import annotations

import json
import threading

import pytest

from qgan.ionq import IonQBackend, IonQHTTPError, JobStatus
from qgan.ionq.reconcile import Submission, SubmissionFailed, adoptable, submit_reconciled
from sweeps.gateway import GatewayConfig, QPUGateway

CIRCUIT = [{"gate": "gpi2", "target": 0, "phase": 0.0}]


def _error(kind: str) -> IonQHTTPError:
    if kind in ("lost", "503"):  # a 5xx on a POST: the job may or may not exist
        return IonQHTTPError("IonQ API error 503 (internal_error): upstream timeout", 503, True, True)
    if kind == "429":
        return IonQHTTPError("IonQ API error 429 (rate_limited): too many requests", 429, True, False, 0.0)
    if kind == "400":
        return IonQHTTPError("IonQ API error 400 (bad_request): invalid job", 400, False, False)
    if kind == "502":  # on a lookup (GET): never uncertain
        return IonQHTTPError("IonQ API error 502 (internal_error): bad gateway", 502, True, False)
    if kind == "403":
        return IonQHTTPError("IonQ API error 403 (forbidden): not allowed", 403, False, False)
    raise AssertionError(kind)


class FakeAPI:
    """An IonQ connection in memory; jobs complete at once.

    posts: one scripted outcome per `submit` call (then "ok"): "ok" (created, id returned), "lost" (created, then
    an uncertain 503: the answer was lost), "503" (uncertain, nothing created), "429" (certain, retriable),
    "400" (certain, fatal). lookups: one scripted answer per `find_by_names` call (then the truth): None or an
    `IonQHTTPError` to raise.
    """

    def __init__(self, posts=(), lookups=()):
        self.posts, self.lookups = list(posts), list(lookups)
        self.jobs: list[dict] = []            # created on the "server", oldest first
        self.submitted: list[str] = []        # the name of every submit call
        self.searched: list[tuple] = []       # (names, since) of every find_by_names call
        self._lock = threading.Lock()

    def add_job(self, name: str) -> dict:
        job = {"id": f"id-{len(self.jobs)}", "name": name, "request": 1_700_000_000 + len(self.jobs)}
        self.jobs.append(job)
        return job

    def submit(self, circuit, shots, name, debias=None):
        with self._lock:
            self.submitted.append(name)
            outcome = self.posts.pop(0) if self.posts else "ok"
            job = self.add_job(name) if outcome in ("ok", "lost") else None
        if outcome == "ok":
            return job["id"]
        raise _error(outcome)

    def find_by_names(self, names, since=None, **kwargs):
        with self._lock:
            self.searched.append((list(names), since))
            scripted = self.lookups.pop(0) if self.lookups else None
            jobs = list(reversed(self.jobs))  # newest first, as GET /jobs lists them
        if scripted is not None:
            raise scripted
        return {n: [j for j in jobs if j["name"] == n] for n in names}

    def status(self, job_id):
        return JobStatus("completed", {"id": job_id})

    def counts(self, status, shots):
        return {0: int(shots)}


# ------------------------------------------------------------------------------------------------ the function
def _hooks() -> tuple[list[str], dict]:
    """Hooks for submit_reconciled that record, in order, what it did."""
    seen: list[str] = []
    return seen, dict(before_post=lambda n: seen.append(f"post {n}"),
                      after_post=lambda e: seen.append(f"answer {e.status if e else 'ok'}"),
                      on_not_found=lambda: seen.append("not found"),
                      backoff=lambda n, e: seen.append(f"backoff {e.status}"),
                      wait=lambda n, e: seen.append("wait"))


def test_an_uncertain_submission_that_created_the_job_is_adopted_by_name_not_sent_twice():
    api = FakeAPI(posts=["lost"])
    seen, hooks = _hooks()
    sub = submit_reconciled(api, "circuit", 10, "job-a", since=123.0, **hooks)
    assert sub == Submission("id-0", adopted=True)
    assert api.submitted == ["job-a"] and api.searched == [(["job-a"], 123.0)] and len(api.jobs) == 1
    assert seen == ["post 1", "answer 503", "backoff 503", "wait"]


def test_a_certain_failure_is_not_searched_for():
    api = FakeAPI(posts=["400"])
    seen, hooks = _hooks()
    with pytest.raises(SubmissionFailed) as info:
        submit_reconciled(api, "circuit", 10, "job-a", since=0.0, **hooks)
    err = info.value
    assert isinstance(err, IonQHTTPError) and err.status == 400 and not err.uncertain and err.error.status == 400
    assert api.searched == [] and api.submitted == ["job-a"] and seen == ["post 1", "answer 400"]
    api = FakeAPI(posts=["429"])  # certain but retriable: sent again, never looked up
    assert submit_reconciled(api, "circuit", 10, "job-b", since=0.0) == Submission("id-0", adopted=False)
    assert api.submitted == ["job-b", "job-b"] and api.searched == []


def test_an_uncertain_submission_that_is_not_found_is_resubmitted_once():
    api = FakeAPI(posts=["503"])
    seen, hooks = _hooks()
    sub = submit_reconciled(api, "circuit", 10, "job-a", since=5.0, **hooks)
    assert sub == Submission("id-0", adopted=False)
    assert api.submitted == ["job-a", "job-a"] and api.searched == [(["job-a"], 5.0)] and len(api.jobs) == 1
    assert seen == ["post 1", "answer 503", "backoff 503", "wait", "not found", "post 2", "answer ok"]


def test_the_last_uncertain_try_is_looked_up_and_attempts_bound_the_posts():
    api = FakeAPI(posts=["lost"])
    assert submit_reconciled(api, "c", 10, "j", since=0.0, attempts=1) == Submission("id-0", adopted=True)
    api = FakeAPI(posts=["503"])
    with pytest.raises(SubmissionFailed) as info:
        submit_reconciled(api, "c", 10, "j", since=0.0, attempts=1)
    assert not info.value.uncertain and len(api.searched) == 1  # looked up: known not to exist
    api = FakeAPI(posts=["429"] * 5)
    with pytest.raises(SubmissionFailed) as info:
        submit_reconciled(api, "c", 10, "j", since=0.0, attempts=3)
    assert info.value.status == 429 and len(api.submitted) == 3 and api.searched == []


def test_a_replayed_uncertain_job_is_looked_up_first_and_the_earliest_of_its_name_adopted():
    api = FakeAPI()
    first, _ = api.add_job("j"), api.add_job("j")
    sub = submit_reconciled(api, "c", 10, "j", since=0.0, uncertain=True)
    assert sub == Submission(first["id"], adopted=True) and api.submitted == []
    assert adoptable([{"id": "b", "request": 2}, {"request": 0}, {"id": "a", "request": 1}]) == "a"
    assert adoptable([{"name": "j"}]) is None and adoptable([]) is None


def test_a_failed_lookup_is_retried_and_the_job_never_sent_again_blindly():
    api = FakeAPI(posts=["lost"], lookups=[_error("502")])
    seen, hooks = _hooks()
    sub = submit_reconciled(api, "c", 10, "j", since=0.0, **hooks)
    assert sub == Submission("id-0", adopted=True) and api.submitted == ["j"] and len(api.searched) == 2
    assert seen == ["post 1", "answer 503", "backoff 503", "wait", "backoff 502", "wait"]
    # Out of tries while the lookups fail: give up; the job may exist, and the POST's error is reported.
    api = FakeAPI(posts=["lost"], lookups=[_error("502")] * 3)
    with pytest.raises(SubmissionFailed) as info:
        submit_reconciled(api, "c", 10, "j", since=0.0, attempts=3)
    assert info.value.uncertain and info.value.status == 503 and api.submitted == ["j"] and len(api.searched) == 2
    # A fatal lookup error on a replayed job: give up at once, nothing sent.
    api = FakeAPI(lookups=[_error("403")])
    with pytest.raises(SubmissionFailed) as info:
        submit_reconciled(api, "c", 10, "j", since=0.0, uncertain=True)
    assert info.value.uncertain and info.value.status == 403 and api.submitted == [] and len(api.searched) == 1


def test_submission_failed_pickles_with_its_error():
    import pickle

    err = SubmissionFailed(_error("503"), uncertain=True)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is SubmissionFailed and back.uncertain and back.status == 503 and str(back) == str(err)


# ------------------------------------------------------------------------------------------------ IonQBackend
def test_backend_adopts_an_uncertain_submission_that_created_the_job():
    api = FakeAPI(posts=["lost"])
    counts = IonQBackend(connection=api, poll_interval=0.0).run_circuits(["circuit"], 10)
    assert counts == [{0: 10}]
    assert len(api.submitted) == 1 and len(api.jobs) == 1 and len(api.searched) == 1


def test_backend_does_not_search_for_a_certain_failure():
    api = FakeAPI(posts=["400"])
    with pytest.raises(IonQHTTPError) as info:
        IonQBackend(connection=api, poll_interval=0.0).run_circuits(["circuit"], 10)
    assert info.value.status == 400 and api.searched == [] and len(api.submitted) == 1


def test_backend_resubmits_once_an_uncertain_submission_that_is_not_found():
    api = FakeAPI(posts=["503"])
    assert IonQBackend(connection=api, poll_interval=0.0).run_circuits(["circuit"], 10) == [{0: 10}]
    assert len(api.submitted) == 2 and len(api.searched) == 1 and len(api.jobs) == 1


def test_backend_retries_a_failed_lookup_instead_of_resubmitting():
    api = FakeAPI(posts=["lost"], lookups=[_error("502")])
    assert IonQBackend(connection=api, poll_interval=0.0).run_circuits(["circuit"], 10) == [{0: 10}]
    assert len(api.submitted) == 1 and len(api.jobs) == 1 and len(api.searched) == 2


# ------------------------------------------------------------------------------------------------ QPU gateway
def _gateway(tmp_path, api: FakeAPI, **kw) -> QPUGateway:
    cfg = dict(campaign="rec", ledger_dir=str(tmp_path / "qpu"), url="http://127.0.0.1:9/v0.4", period_s=1.0,
               max_jobs_per_period=100, poll_interval_s=0.01, backoff_base_s=0.01, backoff_cap_s=0.05)
    cfg.update(kw)
    return QPUGateway(GatewayConfig(**cfg), connection_factory=lambda: api)


def _run(tmp_path, api: FakeAPI, **kw) -> tuple[dict, dict, list[str]]:
    """One single-job request through a gateway on `api`: (wait() answer, status(), ledger record types of the job)."""
    gw = _gateway(tmp_path, api, **kw)
    try:
        gw.submit("k", "t", 10, circuits=[CIRCUIT], qubits=1)
        res = gw.wait("k", 20)
        status = gw.status()
    finally:
        gw.shutdown()
    records = [json.loads(line) for line in (tmp_path / "qpu" / "ledger.jsonl").read_text().splitlines()]
    kinds = [r["type"] + ("/lookup" if r.get("via") == "lookup" else "") for r in records if "job" in r]
    return res, status, kinds


def test_gateway_adopts_an_uncertain_submission_that_created_the_job(tmp_path):
    api = FakeAPI(posts=["lost"])
    res, status, kinds = _run(tmp_path, api)
    assert res["status"] == "completed" and res["counts"] == [{"0": 10}]
    assert len(api.submitted) == 1 and len(api.jobs) == 1 and len(api.searched) == 1
    assert kinds == ["intent", "attempt", "submitted/lookup", "result"]
    assert status["stats"]["reconciled_found"] == 1 and status["stats"]["retries_5xx"] == 1


def test_gateway_does_not_search_for_a_certain_failure(tmp_path):
    api = FakeAPI(posts=["400"])
    res, status, kinds = _run(tmp_path, api)
    assert res["status"] == "failed" and "not submitted: IonQ API error 400" in res["reason"]
    assert api.searched == [] and len(api.submitted) == 1
    assert kinds == ["intent", "attempt", "result"] and status["used_shots"] == 0


def test_gateway_retries_a_429_without_searching(tmp_path):
    api = FakeAPI(posts=["429"])
    res, status, kinds = _run(tmp_path, api)
    assert res["status"] == "completed" and api.searched == [] and len(api.submitted) == 2
    assert kinds == ["intent", "attempt", "attempt", "submitted", "result"] and status["stats"]["retries_429"] == 1


def test_gateway_resubmits_once_an_uncertain_submission_that_is_not_found(tmp_path):
    api = FakeAPI(posts=["503"])
    res, status, kinds = _run(tmp_path, api)
    assert res["status"] == "completed"
    assert len(api.submitted) == 2 and len(api.searched) == 1 and len(api.jobs) == 1
    assert kinds == ["intent", "attempt", "not_found", "attempt", "submitted", "result"]
    assert status["stats"]["reconciled_missing"] == 1 and status["stats"]["submitted"] == 1


def test_gateway_looks_an_uncertain_last_attempt_up_before_giving_up(tmp_path):
    api = FakeAPI(posts=["lost"])
    res, _, kinds = _run(tmp_path, api, max_submit_attempts=1)
    assert res["status"] == "completed" and len(api.submitted) == 1 and len(api.searched) == 1
    assert kinds == ["intent", "attempt", "submitted/lookup", "result"]
    api = FakeAPI(posts=["503"])
    res, _, kinds = _run(tmp_path / "2", api, max_submit_attempts=1)
    assert res["status"] == "failed" and res["reason"].startswith("job rec.")
    assert "not submitted: IonQ API error 503" in res["reason"] and len(api.submitted) == 1
    assert kinds == ["intent", "attempt", "not_found", "result"]


def test_gateway_gives_up_when_the_last_lookup_fails(tmp_path):
    api = FakeAPI(posts=["lost"], lookups=[_error("502")])
    res, status, kinds = _run(tmp_path, api, max_submit_attempts=1)
    assert res["status"] == "failed"
    assert "submission outcome unknown, gave up: IonQ API error 503" in res["reason"]
    assert kinds == ["intent", "attempt", "result"] and status["used_shots"] == 10  # it may have run: counted


def test_gateway_never_resubmits_while_the_lookup_fails(tmp_path):
    api = FakeAPI(posts=["lost"], lookups=[_error("502")])
    res, status, kinds = _run(tmp_path, api)
    assert res["status"] == "completed" and len(api.submitted) == 1 and len(api.jobs) == 1
    assert len(api.searched) == 2 and kinds == ["intent", "attempt", "submitted/lookup", "result"]
    assert status["stats"]["retries_5xx"] == 2 and status["stats"]["reconciled_found"] == 1


def test_gateway_adopts_the_earliest_job_of_that_name_after_a_restart(tmp_path):
    api = FakeAPI()
    gw = _gateway(tmp_path, api)
    name = f"rec.{gw.run_id}/k/0"
    gw.shutdown()
    # The ledger of a gateway that died during the POST: an intent and an attempt, no id.
    records = [{"type": "request", "key": "k", "trial": "t", "jobs": [name], "shots": 10, "t": 1.0},
               {"type": "intent", "job": name, "request": "k", "trial": "t", "index": 0, "hash": "h", "shots": 10,
                "qubits": 1, "n1q": 1, "n2q": 0, "cost": 0.0, "circuit": CIRCUIT, "t": 1.0},
               {"type": "attempt", "job": name, "t": 2.0}]
    with open(tmp_path / "qpu" / "ledger.jsonl", "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    first, second = api.add_job(name), api.add_job(name)  # e.g. two earlier POSTs that both got through
    gw = _gateway(tmp_path, api)
    try:
        res = gw.wait("k", 20)
        status = gw.status()
    finally:
        gw.shutdown()
    assert res["status"] == "completed" and api.submitted == [] and api.searched == [([name], 1.0)]
    assert gw._jobs[name].remote_id == first["id"] != second["id"]
    assert status["stats"]["reconciled_found"] == 1

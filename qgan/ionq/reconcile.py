"""Submitting one IonQ job once: submit; if the outcome is uncertain, find the job by its name and adopt it.

A ``POST /jobs`` that fails with a 5xx, a timeout or a dropped connection may have created the job anyway (the
error is *uncertain*: `IonQHTTPError.uncertain`); sending it again could run, and bill, it twice. So both callers
that submit jobs, `qgan.ionq.backend.IonQBackend` and the QPU gateway (`sweeps.gateway.core`), go through
`submit_reconciled`, which does, for one job with a client-side name unique to it:

1. if the outcome of an earlier try is uncertain, look the job up by its name among the jobs since `since`:
   found: adopt it (`adoptable`: the earliest listed with an id); not found: it was never created, go on; the
   lookup failed: back off, wait and look again (never POST while the job may exist);
2. POST it (one HTTP request, `conn.submit`);
3. on a retriable error with tries left: back off, wait, and go to 1 (so an uncertain error is looked up first);
4. otherwise, if the outcome is uncertain, one last lookup (adopt if found); then raise `SubmissionFailed`.

A certain failure (4xx, 429, a refused connection) is never looked up: the job does not exist. The caller owns
everything around the policy through optional hooks (the gateway writes its ledger, counts, and waits for its rate
window and in-flight cap in them; the backend only sleeps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from qgan.ionq.client import IonQHTTPError


@dataclass(frozen=True)
class Submission:
    """The remote id of a submitted job; `adopted`: found by name after an uncertain try (not a POST's answer)."""

    job_id: str
    adopted: bool


class SubmissionFailed(IonQHTTPError):
    """The job was not submitted. `error` is the last submission error (this message is its message).

    uncertain: the job may still exist on the API (the last lookup failed); False: it is known not to exist.
    """

    def __init__(self, error: IonQHTTPError, uncertain: bool):
        super().__init__(str(error), error.status, error.retriable, uncertain, error.retry_after)
        self.error = error

    def __reduce__(self):
        return (SubmissionFailed, (self.error, self.uncertain))


def adoptable(jobs: list[dict]) -> str | None:
    """The id of the job to adopt among the API's jobs with one name: the earliest submitted (v0.4 ``submitted_at``,
    v0.3 ``request``; then by id, so the choice does not depend on the listing's order) that has an id."""
    from qgan.ionq.client import _job_time

    found = [j for j in jobs if j.get("id")]
    if not found:
        return None
    found.sort(key=lambda j: (_job_time(j) if _job_time(j) is not None else float("inf"), str(j["id"])))
    return str(found[0]["id"])


def submit_reconciled(conn: Any, circuit: Any, shots: int, name: str, *, since: float | None, attempts: int = 8,
                      uncertain: bool = False, debias: bool | None = None,
                      before_post: Callable[[int], None] | None = None,
                      after_post: Callable[[IonQHTTPError | None], None] | None = None,
                      on_not_found: Callable[[], None] | None = None,
                      backoff: Callable[[int, IonQHTTPError], None] | None = None,
                      wait: Callable[[int, IonQHTTPError], None] | None = None) -> Submission:
    """Submit `circuit` as the job `name` through `conn` (an `IonQConnection`: `submit`, `find_by_names`).

    since: unix time from which the API's job listing is searched (when the job was first meant to be sent).
    attempts: at most this many tries at the API, POSTs and failed lookups together (at least one POST unless a
    lookup fails). uncertain: an earlier try's outcome is unknown (a restart found an ``attempt`` without an id):
    look the job up before sending anything. circuit: one circuit or a list (one multi-circuit job). debias: passed
    to ``conn.submit`` when not None (explicit error mitigation).
    Hooks, all optional: ``before_post(n)`` before the n-th POST; ``after_post(error or None)`` after every POST;
    ``on_not_found()`` when a lookup shows the job does not exist; ``backoff(n, error)`` for every retriable POST
    error that will be retried and every failed lookup (record it); ``wait(n, error)`` before trying again after a
    retriable error (sleep; the gateway also waits for its rate window there).
    Returns a `Submission`; raises `SubmissionFailed` when the job was not submitted (fatal error, or out of
    attempts), with ``uncertain`` telling whether it may exist after all.
    """
    tries = 0
    error = None
    while True:
        if uncertain:
            job_id, lookup_error = _look_up(conn, name, since, tries + 1, on_not_found, backoff)
            if job_id is not None:
                return Submission(job_id, adopted=True)
            if lookup_error is not None:  # the job may exist: look again later, never POST it blindly
                tries += 1
                if lookup_error.retriable and tries < attempts:
                    if wait is not None:
                        wait(tries, lookup_error)
                    continue
                raise SubmissionFailed(error or lookup_error, uncertain=True)
            uncertain = False
        tries += 1
        if before_post is not None:
            before_post(tries)
        error = None
        try:
            sent = conn.submit(circuit, shots, name) if debias is None else \
                conn.submit(circuit, shots, name, debias=debias)
            return Submission(sent, adopted=False)
        except IonQHTTPError as exc:
            error = exc
        finally:
            if after_post is not None:
                after_post(error)
        uncertain = error.uncertain
        if error.retriable and tries < attempts:
            if backoff is not None:
                backoff(tries, error)
            if wait is not None:
                wait(tries, error)
            continue
        if uncertain:
            job_id, lookup_error = _look_up(conn, name, since, tries, on_not_found, backoff)
            if job_id is not None:
                return Submission(job_id, adopted=True)
            uncertain = lookup_error is not None
        raise SubmissionFailed(error, uncertain)


def _look_up(conn, name: str, since: float | None, tries: int, on_not_found,
             backoff) -> tuple[str | None, IonQHTTPError | None]:
    """One lookup by name: (id of the job to adopt, None), (None, None) if it does not exist, (None, error)."""
    try:
        jobs = conn.find_by_names([name], since=since)[name]
    except IonQHTTPError as exc:
        if backoff is not None:
            backoff(tries, exc)
        return None, exc
    job_id = adoptable(jobs)
    if job_id is None and on_not_found is not None:
        on_not_found()
    return job_id, None

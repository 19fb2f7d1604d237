"""What a QPU gateway is given and what it refuses with: `GatewayConfig`, `BudgetExceeded`, `QPUJobFailed`.

Plain values only (no Ray, no qiskit), so that Ray can ship a config and restart the actor with it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

DEFAULT_NAMESPACE = "qgan-qpu"
FINAL = ("completed", "failed", "canceled")

#: IonQ runs debiasing only on jobs of at least this many shots (fewer: it cannot be enabled).
DEBIAS_MIN_SHOTS = 500
PRICE_SOURCES = ("table", "api")


class BudgetExceeded(RuntimeError):
    """A request would push the campaign past its shot or cost budget; nothing of it was submitted.

    No retry can change that: the trainable ends the trial as failed with reason "budget_exhausted: ..."."""

    ends_trial_as = "budget_exhausted"


class QPUJobFailed(RuntimeError):
    """A QPU job of the request failed, was canceled, or could not be submitted (fatal API error).

    The request is final in the ledger (a retry of the trial replays it and gets the same answer), so the trainable
    ends the trial as failed with reason "qpu_job_failed: ..." instead of letting Tune retry it."""

    ends_trial_as = "qpu_job_failed"


class GatewayUnavailable(QPUJobFailed):
    """The campaign's gateway could not be reached: not final (a retried trial may find it again)."""

    ends_trial_as = None


@dataclass
class GatewayConfig:
    """Everything a gateway needs; plain values so that Ray can ship it and restart the actor with it.

    ledger_dir: a POSIX directory on the run's storage (shared if the actor may move between nodes).
    url: API base with version prefix (None: $IONQ_API_URL or IonQ's public v0.4 URL). backend: API backend name.
    max_jobs_per_period / period_s: the rate limit (e.g. 10 per 60 s; tests use a 2 s window); 0 = no rate limit
        (the local emulator).
    max_circuits_per_job: the circuits of one request (an fd step, an SPSA iteration) go out as IonQ multi-circuit
        jobs of at most this many circuits (1: one single-circuit job per circuit).
    debias: IonQ's error mitigation (debiasing), sent explicitly with every job (``settings.error_mitigation``);
        True needs >= 500 shots per circuit (DEBIAS_MIN_SHOTS).
    budget_shots / budget_cost: None = unlimited. Shots count per circuit (a job of k circuits x S shots is k x S).
    Price table (``price_source="table"``, the fallback): ``currency`` per gate-shot / per job; a job costs
        max(job_minimum (job_minimum_debias when debiased), shots x sum over its circuits of (n1q x price_1q +
        n2q x price_2q)) + price_per_job. ``price_source="api"``: IonQ's own estimate (``GET /jobs/estimate``
        through qiskit-ionq's client) per job, the table only where the estimate fails (flagged in the ledger).
    """

    campaign: str
    ledger_dir: str
    url: str | None = None
    backend: str = "qpu.aria-2"
    noise_model: str | None = None
    max_jobs_per_period: int = 10
    period_s: float = 60.0
    max_in_flight: int = 4
    max_circuits_per_job: int = 1
    debias: bool = False
    budget_shots: int | None = None
    budget_cost: float | None = None
    price_source: str = "table"
    currency: str = "USD"
    price_1q_gate_shot: float = 0.000220
    price_2q_gate_shot: float = 0.000975
    price_per_job: float = 0.0
    job_minimum: float = 0.0
    job_minimum_debias: float = 0.0
    poll_interval_s: float = 2.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 120.0
    max_submit_attempts: int = 30
    http_timeout_s: float = 30.0
    lookup_max_pages: int = 200

    def __post_init__(self):
        if not self.campaign or any(c in self.campaign for c in "/ \t\n"):
            raise ValueError(f"campaign name {self.campaign!r} must be non-empty without '/' or spaces")
        if "://" in str(self.ledger_dir):
            raise ValueError(f"ledger_dir must be a local or mounted POSIX path, not a URI: {self.ledger_dir}")
        if self.max_jobs_per_period < 0 or (self.max_jobs_per_period and self.period_s <= 0):
            raise ValueError("the rate limit needs max_jobs_per_period >= 1 (0: none) and period_s > 0")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if self.max_circuits_per_job < 1:
            raise ValueError("max_circuits_per_job must be >= 1")
        if self.budget_shots is not None and self.budget_shots < 0:
            raise ValueError("budget_shots must be >= 0")
        if self.budget_cost is not None and self.budget_cost < 0:
            raise ValueError("budget_cost must be >= 0")
        if self.price_source not in PRICE_SOURCES:
            raise ValueError(f"price_source must be one of {PRICE_SOURCES}, got {self.price_source!r}")
        if not isinstance(self.debias, bool):
            raise ValueError(f"debias must be true or false, got {self.debias!r}")

    @property
    def rate_limited(self) -> bool:
        return self.max_jobs_per_period > 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def settings(self) -> dict:
        """What decides spending and pacing (the ledger records it at every start; no paths, no URL)."""
        keys = ("backend", "max_jobs_per_period", "period_s", "max_in_flight", "max_circuits_per_job", "debias",
                "budget_shots", "budget_cost", "price_source", "currency", "price_1q_gate_shot",
                "price_2q_gate_shot", "price_per_job", "job_minimum", "job_minimum_debias")
        return {k: getattr(self, k) for k in keys}

    def table_cost(self, gate_counts: list[tuple[int, int]], shots: int) -> float:
        """The price table's cost of one job: its circuits' (n1q, n2q) gate counts at `shots` shots each."""
        variable = shots * sum(n1 * self.price_1q_gate_shot + n2 * self.price_2q_gate_shot for n1, n2 in gate_counts)
        minimum = self.job_minimum_debias if self.debias else self.job_minimum
        return max(minimum, variable) + self.price_per_job

    def job_cost(self, n1q: int, n2q: int, shots: int) -> float:
        """The price table's cost of a single-circuit job (see `table_cost`)."""
        return self.table_cost([(n1q, n2q)], shots)

    def jobs_for(self, circuits: int) -> int:
        """How many jobs a request of `circuits` circuits is split into."""
        return max(1, math.ceil(int(circuits) / self.max_circuits_per_job))

    def check_debias(self, shots: int) -> str | None:
        """Why a request of `shots` shots per circuit cannot run with this config's mitigation (None: it can)."""
        if self.debias and shots < DEBIAS_MIN_SHOTS:
            return (f"debias needs at least {DEBIAS_MIN_SHOTS} shots per circuit (IonQ cannot debias fewer), "
                    f"the request has {shots}: run with debias off or more shots")
        return None

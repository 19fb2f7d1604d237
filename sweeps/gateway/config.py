"""What a QPU gateway is given and what it refuses with: `GatewayConfig`, `BudgetExceeded`, `QPUJobFailed`.

Plain values only (no Ray, no qiskit), so that Ray can ship a config and restart the actor with it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

DEFAULT_NAMESPACE = "qgan-qpu"
FINAL = ("completed", "failed", "canceled")


class BudgetExceeded(RuntimeError):
    """A request would push the campaign past its shot or cost budget; nothing of it was submitted.

    No retry can change that: the trainable ends the trial as failed with reason "budget_exhausted: ..."."""

    ends_trial_as = "budget_exhausted"


class QPUJobFailed(RuntimeError):
    """A QPU job of the request failed, was canceled, or could not be submitted (fatal API error)."""


@dataclass
class GatewayConfig:
    """Everything a gateway needs; plain values so that Ray can ship it and restart the actor with it.

    ledger_dir: a POSIX directory on the run's storage (shared if the actor may move between nodes).
    url: API base with version prefix (None: $IONQ_API_URL or IonQ's public v0.4 URL). backend: API backend name.
    max_jobs_per_period / period_s: the rate limit (e.g. 10 per 60 s; tests use a 2 s window).
    budget_shots / budget_cost: None = unlimited. Prices in the account's currency per gate-shot / per job.
    """

    campaign: str
    ledger_dir: str
    url: str | None = None
    backend: str = "qpu.aria-2"
    noise_model: str | None = None
    max_jobs_per_period: int = 10
    period_s: float = 60.0
    max_in_flight: int = 4
    budget_shots: int | None = None
    budget_cost: float | None = None
    price_1q_gate_shot: float = 0.000220
    price_2q_gate_shot: float = 0.000975
    price_per_job: float = 0.0
    poll_interval_s: float = 2.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 120.0
    max_submit_attempts: int = 30
    http_timeout_s: float = 30.0

    def __post_init__(self):
        if not self.campaign or any(c in self.campaign for c in "/ \t\n"):
            raise ValueError(f"campaign name {self.campaign!r} must be non-empty without '/' or spaces")
        if "://" in str(self.ledger_dir):
            raise ValueError(f"ledger_dir must be a local or mounted POSIX path, not a URI: {self.ledger_dir}")
        if self.max_jobs_per_period < 1 or self.period_s <= 0:
            raise ValueError("the rate limit needs max_jobs_per_period >= 1 and period_s > 0")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if self.budget_shots is not None and self.budget_shots < 0:
            raise ValueError("budget_shots must be >= 0")
        if self.budget_cost is not None and self.budget_cost < 0:
            raise ValueError("budget_cost must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def job_cost(self, n1q: int, n2q: int, shots: int) -> float:
        """Estimated price of one job: shots x (n1q x price_1q + n2q x price_2q) + price_per_job."""
        return shots * (n1q * self.price_1q_gate_shot + n2q * self.price_2q_gate_shot) + self.price_per_job

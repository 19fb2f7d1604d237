"""The QPU gateway: one named Ray actor per campaign owns the IonQ connection and every job of the campaign.

One module per job (the rules the gateway enforces are in `sweeps.gateway.core`'s docstring and docs/qpu.md):

- `sweeps.gateway.config`: `GatewayConfig`, and the errors a trial sees, `BudgetExceeded` and `QPUJobFailed`;
- `sweeps.gateway.ledger`: `Ledger`, the durable append-only JSON-lines ledger;
- `sweeps.gateway.limiter`: `SlidingWindowLimiter`, the rate limit;
- `sweeps.gateway.core`: `QPUGateway`, the state machine (admission and budget, dispatch, reconciliation of
  uncertain submissions, polling, replay of the ledger after a restart);
- `sweeps.gateway.ray_client`: the Ray actor (`start_gateway`, `get_gateway`, `actor_name`) and the trials' client
  (`GatewayBackend`, `GatewayBackendFactory`); the only module that uses Ray (imported inside its functions).
"""
from __future__ import annotations

from sweeps.gateway.config import (
    DEBIAS_MIN_SHOTS,
    DEFAULT_NAMESPACE,
    FINAL,
    BudgetExceeded,
    GatewayConfig,
    GatewayUnavailable,
    QPUJobFailed,
)
from sweeps.gateway.core import QPUGateway, ledger_summary
from sweeps.gateway.ledger import Ledger
from sweeps.gateway.limiter import SlidingWindowLimiter
from sweeps.gateway.ray_client import (
    GatewayBackend,
    GatewayBackendFactory,
    actor_name,
    get_gateway,
    start_gateway,
)

__all__ = [
    "BudgetExceeded",
    "QPUJobFailed",
    "GatewayUnavailable",
    "GatewayConfig",
    "DEBIAS_MIN_SHOTS",
    "ledger_summary",
    "DEFAULT_NAMESPACE",
    "FINAL",
    "Ledger",
    "SlidingWindowLimiter",
    "QPUGateway",
    "start_gateway",
    "get_gateway",
    "actor_name",
    "GatewayBackend",
    "GatewayBackendFactory",
]

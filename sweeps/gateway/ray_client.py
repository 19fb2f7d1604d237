"""The Ray side of the QPU gateway: the named actor (`start_gateway`, `get_gateway`, `actor_name`) and the trials'
client, `GatewayBackend` (a `qgan.quantum.Backend`) with its per-trial factory `GatewayBackendFactory`.

Ray is imported only inside the functions that need it.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from typing import Any

import numpy as np

from qgan.ionq import expand_counts, scrub
from qgan.quantum.backends import Backend
from sweeps.gateway.config import BudgetExceeded, GatewayConfig, GatewayUnavailable, QPUJobFailed
from sweeps.gateway.core import QPUGateway


def actor_name(campaign: str) -> str:
    return f"qpu-gateway-{campaign}"


def start_gateway(config: GatewayConfig, detached: bool = False, namespace: str | None = None,
                  max_concurrency: int = 256):
    """Create (or get, if it already runs with the same settings) the campaign's named gateway actor.

    A running gateway with different settings is replaced (it resumes from the ledger).
    The actor restarts after a crash (``max_restarts=-1``) and Ray retries calls that were in flight
    (``max_task_retries=-1``); the new instance resumes from the ledger. It is placed on the node of the process
    that calls this (the campaign's driver: hard node affinity), so the token it reads ($IONQ_API_KEY in that
    node's environment) is the one set where the campaign was launched; it is never passed through Ray.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    opts: dict[str, Any] = dict(name=actor_name(config.campaign), get_if_exists=True, max_restarts=-1,
                                max_task_retries=-1, max_concurrency=max_concurrency, num_cpus=0,
                                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False))
    if namespace:
        opts["namespace"] = namespace
    if detached:
        opts["lifetime"] = "detached"
    wanted = config.to_dict()
    for _ in range(3):
        handle = ray.remote(QPUGateway).options(**opts).remote(wanted)
        if ray.get(handle.get_config.remote()) == wanted:  # also surfaces construction errors (token, ledger)
            return handle
        # A gateway of this campaign already runs with other settings (e.g. a larger budget on --resume): stop it
        # and start one with the new settings; it resumes from the same ledger like a restart after a crash.
        ray.kill(handle, no_restart=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                ray.get_actor(opts["name"], namespace=namespace)
            except ValueError:
                break
            time.sleep(0.1)
    raise RuntimeError(f"could not (re)start the gateway of campaign {config.campaign!r} with the new settings")


def get_gateway(campaign: str, namespace: str | None = None):
    import ray

    return ray.get_actor(actor_name(campaign), namespace=namespace)


class GatewayBackend(Backend):
    """`qgan.quantum.Backend` that runs circuits through the campaign's gateway actor (pass to run_trial).

    Each `sample` call is one request with key ``<trial>/<content hash>#<k>`` (hash of ansatz, thetas and shots; k
    counts earlier calls with the same content in this backend): a retried call, or a trial replaying its calls
    after a restart from a checkpoint, gets the original jobs' results and spends no budget twice.
    Raises `BudgetExceeded` when the gateway refuses the request and `QPUJobFailed` when a job failed.
    """

    name = "gateway"

    def __init__(self, campaign: str, trial_id: str, namespace: str | None = None, handle: Any = None,
                 wait_s: float = 5.0, timeout_s: float | None = None, max_unreachable: int = 120):
        super().__init__()
        self.max_unreachable = int(max_unreachable)
        if "/" in str(trial_id) or "#" in str(trial_id):
            raise ValueError(f"trial id {trial_id!r} must not contain '/' or '#'")
        self.campaign, self.trial_id, self.namespace = campaign, str(trial_id), namespace
        self._handle = handle
        self.wait_s = float(wait_s)
        self.timeout_s = timeout_s
        self._seen: dict[str, int] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"] = None  # re-resolved by name where it is used
        return state

    def _gw(self):
        if self._handle is None:
            self._handle = get_gateway(self.campaign, self.namespace)
        return self._handle

    def request_key(self, spec: dict, thetas: np.ndarray, shots: int) -> str:
        """``<trial>/<sha256[:16] of spec, thetas, shots>#<k>``; advances the occurrence count k."""
        h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode() + np.ascontiguousarray(thetas).tobytes()
                           + str(int(shots)).encode()).hexdigest()[:16]
        k = self._seen.get(h, 0)
        self._seen[h] = k + 1
        return f"{self.trial_id}/{h}#{k}"

    def _call(self, gw, method: str, *args, **kwargs):
        if isinstance(gw, QPUGateway):  # in-process gateway (tests, single-process use)
            return getattr(gw, method)(*args, **kwargs)
        import ray

        return ray.get(getattr(gw, method).remote(*args, **kwargs), timeout=self.wait_s + 120)

    def run_request(self, key: str, shots: int, **payload) -> list[dict[int, int]]:
        """Submit (idempotently) and wait; returns counts per circuit."""
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            from ray.exceptions import ActorUnavailableError
        except ImportError:  # pragma: no cover
            ActorUnavailableError = RayActorError  # type: ignore[misc,assignment]
        t0 = time.monotonic()
        need_submit, failures = True, 0
        while True:
            if self.timeout_s is not None and time.monotonic() - t0 > self.timeout_s:
                raise TimeoutError(f"QPU request {key} not finished after {self.timeout_s:.0f} s")
            try:
                gw = self._gw()
                if need_submit:
                    res = self._call(gw, "submit", key, self.trial_id, int(shots), **payload)
                    need_submit = False
                else:
                    res = self._call(gw, "wait", key, self.wait_s)
                failures = 0
            except (RayActorError, ActorUnavailableError, GetTimeoutError, ValueError) as exc:
                if isinstance(exc, ValueError) and "Failed to look up actor" not in str(exc):
                    raise
                failures += 1
                if failures > self.max_unreachable:
                    raise GatewayUnavailable(f"QPU gateway of campaign {self.campaign!r} unreachable "
                                       f"({failures} tries): {scrub(exc)}") from None
                self._handle = None
                need_submit = True  # idempotent: re-admits nothing if the ledger has it
                time.sleep(min(10.0, 0.2 * 2 ** min(failures, 6)) * (0.5 + random.random()))
                continue
            status = res["status"]
            if status == "completed":
                return [{int(k): int(v) for k, v in c.items()} for c in res["counts"]]
            if status == "budget_exceeded":
                raise BudgetExceeded(res["reason"])
            if status == "failed":
                raise QPUJobFailed(res["reason"])
            if status == "unknown":
                need_submit = True

    def _sample(self, ansatz, thetas, shots: int, generator):
        """torch.long (B, shots) basis indices for `thetas` (B, P) (validated by `Backend.sample`)."""
        import torch

        arr = thetas.detach().to("cpu", torch.float64).numpy()
        spec = {"n": int(ansatz.n), "layers": int(ansatz.layers), "connectivity": str(ansatz.connectivity)}
        key = self.request_key(spec, arr, shots)
        counts = self.run_request(key, int(shots), ansatz=spec, thetas=arr.tolist())
        return torch.stack([expand_counts(c, int(shots), generator) for c in counts])


class GatewayBackendFactory:
    """Picklable ``(TrialConfig, trial_id) -> GatewayBackend`` for `sweeps.trainable` (backend=...): one client per
    trial, keyed by the trial id the sweep gave it, so that a retried trial reuses its request keys."""

    def __init__(self, campaign: str, namespace: str | None = None, wait_s: float = 5.0):
        self.campaign, self.namespace, self.wait_s = campaign, namespace, wait_s

    def __call__(self, cfg, trial_id: str) -> GatewayBackend:
        return GatewayBackend(self.campaign, trial_id, namespace=self.namespace, wait_s=self.wait_s)

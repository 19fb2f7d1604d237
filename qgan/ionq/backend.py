"""`IonQBackend`: a `qgan.quantum.Backend` on the IonQ API directly (one process, no gateway, no ledger)."""
from __future__ import annotations

import os
import time

from qgan.ionq.client import DEFAULT_QPU, IonQConnection, IonQJobFailed, backoff_delay, call_with_retries
from qgan.ionq.reconcile import submit_reconciled
from qgan.ionq.secrets import scrub
from qgan.ionq.wire import expand_counts
from qgan.quantum.backends import Backend


class IonQBackend(Backend):
    """`qgan.quantum.Backend` on IonQ directly (one process, no gateway, no ledger): for small interactive use.

    Campaigns on real hardware go through `sweeps.gateway.GatewayBackend`, which adds rate limits, a budget and a
    durable ledger. Here every parameter vector is one job named ``{name_prefix}-{call}-{b}``, submitted through
    `qgan.ionq.reconcile.submit_reconciled` (as the gateway does): a submission that fails with an uncertain outcome
    is looked up by name before being sent again.
    """

    name = "ionq"

    def __init__(self, token: str | None = None, url: str | None = None, backend: str = DEFAULT_QPU,
                 noise_model: str | None = None, poll_interval: float = 2.0, timeout_s: float = 24 * 3600.0,
                 name_prefix: str | None = None, connection: IonQConnection | None = None):
        super().__init__()
        self.conn = connection or IonQConnection(token=token, url=url, backend=backend, noise_model=noise_model)
        self.poll_interval = float(poll_interval)
        self.timeout_s = float(timeout_s)
        self.name_prefix = name_prefix or f"qgan-{os.getpid()}-{int(time.time())}"
        self._calls = 0

    def run_circuits(self, circuits: list, shots: int) -> list[dict[int, int]]:
        """Submit native-gate circuits (one job each), wait, return counts ``{index: count}`` per circuit."""
        self._calls += 1
        ids = []
        for b, qc in enumerate(circuits):
            name = f"{self.name_prefix}-{self._calls:06d}-{b:04d}"
            ids.append(self._submit_reconciled(qc, shots, name))
        out = []
        for job_id in ids:
            deadline = time.monotonic() + self.timeout_s
            while True:
                st = call_with_retries(lambda: self.conn.status(job_id))
                if st.final:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"IonQ job {job_id} not finished after {self.timeout_s:.0f} s")
                time.sleep(self.poll_interval)
            if st.status != "completed":
                failure = scrub((st.raw.get("failure") or {}).get("error", ""))
                raise IonQJobFailed(f"IonQ job {job_id} {st.status}: {failure}")
            out.append(call_with_retries(lambda: self.conn.counts(st, shots)))
        return out

    def _submit_reconciled(self, qc, shots: int, name: str, attempts: int = 8) -> str:
        """Submit one job (`qgan.ionq.reconcile.submit_reconciled`; raises `SubmissionFailed`, an IonQHTTPError)."""
        sub = submit_reconciled(self.conn, qc, shots, name, since=time.time(), attempts=attempts,
                                wait=lambda n, exc: time.sleep(backoff_delay(n - 1, retry_after=exc.retry_after)))
        return sub.job_id

    def _sample(self, ansatz, thetas, shots: int, generator):
        """Basis indices torch.long (B, shots) for parameter vectors `thetas` (B, P) (validated by `sample`)."""
        import torch

        th = thetas.detach().to("cpu", torch.float64).numpy()
        circuits = [ansatz.to_native(t, measure=True) for t in th]
        counts = self.run_circuits(circuits, int(shots))
        return torch.stack([expand_counts(c, int(shots), generator) for c in counts])

"""A local emulator of the IonQ REST API (the part qiskit-ionq 1.1.1 uses), for tests and dry rehearsals.

Run: ``python -m qgan.ionq.emulator --port 8999 --token SECRET [--latency 2] [--rate-limit 5 --rate-window 60]
[--fault-prob 0.05 | --fault-every 7] [--ideal] [--counters-file FILE]``; then point the client at
``http://127.0.0.1:8999/v0.4`` (``$IONQ_API_URL``).

Endpoints (prefix ``/v0.4``, ``/v0.3`` accepted too), all requiring ``Authorization: apiKey <token>`` or ``Bearer``:

- ``POST /jobs``                          submit an ``ionq.circuit.v1`` job -> ``{"id", "status": "submitted"}``
- ``GET  /jobs/{id}``                     status; when completed, ``results.probabilities.url``
- ``GET  /jobs/{id}/results/probabilities``  ``{"<basis index>": p}`` (bit q = qubit q); ``/histogram`` alias
- ``PUT  /jobs/{id}/status/cancel``       cancel a job that has not completed
- ``GET  /jobs?limit=&next=&status=&name=``  newest-first listing with a cursor (``name`` is an emulator extra)
- ``DELETE /jobs/{id}``; ``GET /backends/{name}`` (no auth, as qiskit-ionq asks it unauthenticated)
- ``GET  /_emulator/stats``               submissions per job name, request/429/5xx counters (for tests)

Execution: the JSON circuit becomes a qiskit circuit of qiskit_ionq GPI/GPI2/MS gates; ``qpu.*`` backends sample
`shots` shots on qiskit-aer with the Aria-2-like noise model (``qgan.quantum.noise.aria2_noise_model``) unless
``--ideal``; the ``simulator`` backend returns exact probabilities (noise model "ideal") or noisy samples. A job completes `latency` seconds after submission.

Fault injection: ``rate_limit`` submissions per ``rate_window`` seconds (more get 429 + Retry-After), random 429s
(``rate_limit_prob``), 5xx responses on any request with probability ``fault_prob`` or on every ``fault_every``-th
request, and ``fault_after_create_prob``: the job is created but the response is a 503 (an "uncertain" submission).
The token is compared, never logged and never echoed.
"""
from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from qgan.ionq.qiskit_thread import qiskit_call
from qgan.ionq.wire import circuit_from_ionq_json, gate_counts

log = logging.getLogger(__name__)

API_PREFIXES = ("/v0.4", "/v0.3")


@dataclass
class EmulatorConfig:
    """Behaviour of the emulator. Times in seconds; probabilities in [0, 1]."""

    token: str
    latency: float = 0.5
    ideal: bool = False
    seed: int = 0
    rate_limit: int = 0               # max accepted submissions per rate_window (0 = unlimited)
    rate_window: float = 60.0
    rate_limit_prob: float = 0.0      # probability that a submission gets a 429 anyway
    retry_after: float = 1.0          # Retry-After seconds sent with 429s
    fault_prob: float = 0.0           # probability of a 5xx on any authenticated request
    fault_every: int = 0              # every k-th authenticated request fails with 5xx (0 = never)
    fault_status: int = 503
    fault_after_create_prob: float = 0.0
    counters_file: str | None = None
    num_qubits: int = 25
    max_shots: int = 100_000


@dataclass
class _Job:
    id: str
    name: str
    body: dict
    circuit: list
    qubits: int
    shots: int
    backend: str
    noise: str
    submitted: float
    status: str = "submitted"
    probabilities: dict | None = None
    failure: dict | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class EmulatorState:
    """Jobs, counters and fault decisions, shared by the request handler threads."""

    def __init__(self, config: EmulatorConfig):
        if not config.token:
            raise ValueError("the emulator needs a token (--token or $IONQ_EMULATOR_TOKEN)")
        self.config = config
        self.lock = threading.Lock()
        self.jobs: dict[str, _Job] = {}
        self.order: list[str] = []
        self.submissions: dict[str, int] = {}
        self.submission_times: list[float] = []
        self.counters = {"requests": 0, "authenticated": 0, "unauthorized": 0, "status_429": 0, "status_5xx": 0,
                         "submitted": 0, "completed": 0, "canceled": 0, "failed": 0, "created_then_503": 0}
        self._rng = random.Random(config.seed)
        self._accepted_window: list[float] = []

    # -- faults --------------------------------------------------------------------------------------------
    def auth_ok(self, header: str | None) -> bool:
        if not header:
            return False
        parts = header.split(None, 1)
        if len(parts) != 2 or parts[0].lower() not in ("apikey", "bearer"):
            return False
        return hmac.compare_digest(parts[1].strip().encode(), self.config.token.encode())

    def injected_fault(self) -> bool:
        with self.lock:
            self.counters["authenticated"] += 1
            k = self.counters["authenticated"]
            hit = (self.config.fault_every > 0 and k % self.config.fault_every == 0) or \
                (self.config.fault_prob > 0 and self._rng.random() < self.config.fault_prob)
            if hit:
                self.counters["status_5xx"] += 1
            return hit

    def rate_limited(self) -> bool:
        """Decide (and count) a 429 for a submission attempt; otherwise take a slot of the window."""
        cfg = self.config
        now = time.time()
        with self.lock:
            if cfg.rate_limit_prob > 0 and self._rng.random() < cfg.rate_limit_prob:
                self.counters["status_429"] += 1
                return True
            if cfg.rate_limit > 0:
                self._accepted_window = [t for t in self._accepted_window if t > now - cfg.rate_window]
                if len(self._accepted_window) >= cfg.rate_limit:
                    self.counters["status_429"] += 1
                    return True
                self._accepted_window.append(now)
            return False

    # -- jobs ----------------------------------------------------------------------------------------------
    def create(self, body: dict) -> _Job:
        if body.get("type", "ionq.circuit.v1") != "ionq.circuit.v1":
            raise ValueError(f"job type {body.get('type')!r} is not supported by the emulator")
        inp = body.get("input") or {}
        circuit = inp.get("circuit")
        if not isinstance(circuit, list):
            raise ValueError("input.circuit must be a list of instructions")
        qubits = int(inp.get("qubits") or 0)
        if qubits < 1 or qubits > self.config.num_qubits:
            raise ValueError(f"input.qubits must be 1..{self.config.num_qubits}")
        gateset = inp.get("gateset", "qis")
        natives = {"gpi", "gpi2", "ms", "zz"}
        if gateset == "native" and any(ins.get("gate") not in natives for ins in circuit):
            raise ValueError("a native-gateset circuit may only use gpi, gpi2, ms, zz")
        circuit_from_ionq_json(circuit, qubits)  # validates
        shots = int(body.get("shots") or 100)
        if not 1 <= shots <= self.config.max_shots:
            raise ValueError(f"shots must be 1..{self.config.max_shots}")
        backend = str(body.get("backend") or body.get("target") or "simulator")
        if backend != "simulator" and not backend.startswith("qpu."):
            raise ValueError(f"unknown backend {backend!r}")
        noise = "ideal" if self.config.ideal else "aria-2"
        if backend == "simulator":
            noise = str((body.get("noise") or {}).get("model") or "ideal")
        job = _Job(id=str(uuid.uuid4()), name=str(body.get("name") or ""), body=body, circuit=circuit,
                   qubits=qubits, shots=shots, backend=backend, noise=noise, submitted=time.time())
        with self.lock:
            self.jobs[job.id] = job
            self.order.append(job.id)
            self.submissions[job.name] = self.submissions.get(job.name, 0) + 1
            self.submission_times.append(job.submitted)
            self.counters["submitted"] += 1
        self._write_counters()
        return job

    def advance(self, job: _Job) -> None:
        """Move a job along its life cycle by the clock; run it when its latency has passed."""
        with job.lock:
            if job.status in ("completed", "failed", "canceled"):
                return
            age = time.time() - job.submitted
            if age < self.config.latency:
                job.status = "ready" if age < self.config.latency / 2 else "started"
                return
            try:
                job.probabilities = run_job(job.circuit, job.qubits, job.shots, job.noise,
                                            seed=self.config.seed + len(self.order),
                                            exact=job.backend == "simulator")
                job.status = "completed"
                key = "completed"
            except Exception as exc:  # noqa: BLE001 - reported as a failed job
                job.failure = {"code": "internal_error", "error": f"{type(exc).__name__}: {exc}"}
                job.status = "failed"
                key = "failed"
        with self.lock:
            self.counters[key] += 1

    def view(self, job: _Job, prefix: str) -> dict:
        n1, n2 = _gate_counts(job.circuit)
        out: dict[str, Any] = {
            "id": job.id, "name": job.name, "status": job.status, "type": "ionq.circuit.v1",
            "backend": job.backend, "target": job.backend, "shots": job.shots, "qubits": job.qubits,
            "request": int(job.submitted), "submitted_at": _iso(job.submitted),
            "metadata": job.body.get("metadata") or {},
            "noise": {"model": job.noise},
            "stats": {"qubits": job.qubits, "circuits": 1, "gate_counts": {"1q": n1, "2q": n2}},
            "gate_counts": {"1q": n1, "2q": n2},
        }
        if job.status == "completed":
            out["results"] = {
                "probabilities": {"url": f"{prefix}/jobs/{job.id}/results/probabilities"},
                "histogram": {"url": f"{prefix}/jobs/{job.id}/results/probabilities"},
            }
            out["execution_duration_ms"] = int(1000 * self.config.latency)
            out["response"] = int(job.submitted + self.config.latency)
        if job.failure:
            out["failure"] = job.failure
        return out

    def stats(self) -> dict:
        with self.lock:
            dup = {k: v for k, v in self.submissions.items() if v > 1}
            return {"counters": dict(self.counters), "submissions": dict(self.submissions), "duplicates": dup,
                    "submission_times": list(self.submission_times), "jobs": len(self.jobs)}

    def _write_counters(self) -> None:
        path = self.config.counters_file
        if not path:
            return
        data = self.stats()
        tmp = f"{path}.tmp{threading.get_ident()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _gate_counts(circuit: list) -> tuple[int, int]:
    return gate_counts(circuit)


# ------------------------------------------------------------------------------------------------ execution
def run_job(circuit: list, qubits: int, shots: int, noise: str, seed: int = 0,
            exact: bool = False) -> dict[str, float]:
    """Execute an IonQ JSON circuit -> ``{"<basis index>": probability}``.

    exact (the ideal cloud simulator): the exact Born probabilities. Otherwise `shots` shots are sampled, ideal
    (noise "ideal") or on qiskit-aer with the Aria-2-like noise model; probability = count / shots, so that
    counts = p x shots exactly, as a QPU histogram.
    """
    if noise == "ideal":
        from qiskit.quantum_info import Statevector

        qc = circuit_from_ionq_json(circuit, qubits, measure=False)
        p = np.clip(qiskit_call(lambda: Statevector(qc).probabilities()), 0.0, None)
        p = p / p.sum()
        if exact:
            return {str(i): float(v) for i, v in enumerate(p) if v > 1e-12}
        counts = np.random.default_rng(seed).multinomial(shots, p)
        return {str(i): float(c) / shots for i, c in enumerate(counts) if c > 0}
    from qgan.quantum.backends import run_aer
    from qgan.quantum.noise import aria2_noise_model

    qc = circuit_from_ionq_json(circuit, qubits, measure=True)
    counts = qiskit_call(lambda: run_aer([qc], shots, seed=seed, noise_model=aria2_noise_model())[0])
    total = sum(counts.values())
    return {str(int(k.replace(" ", ""), 2)): v / total for k, v in counts.items()}


# ------------------------------------------------------------------------------------------------ HTTP
class _Handler(BaseHTTPRequestHandler):
    server_version = "IonQEmulator/1.0"
    protocol_version = "HTTP/1.1"
    state: EmulatorState  # set on the subclass

    def log_message(self, fmt, *args):  # quiet; never logs headers
        log.debug("emulator: %s", fmt % args)

    # -- plumbing ------------------------------------------------------------------------------------------
    def _send(self, code: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str, kind: str = "error", headers: dict | None = None) -> None:
        self._send(code, {"error": {"type": kind, "message": message}}, headers)

    def _route(self) -> tuple[str, list[str], dict] | None:
        url = urlparse(self.path)
        path = url.path
        prefix = next((p for p in API_PREFIXES if path.startswith(p + "/")), None)
        if prefix is None:
            if path.startswith("/_emulator/"):
                return "", [p for p in path.split("/") if p], parse_qs(url.query)
            return None
        parts = [p for p in path[len(prefix):].split("/") if p]
        return prefix, parts, parse_qs(url.query)

    def _body(self) -> dict | None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        try:
            out = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return out if isinstance(out, dict) else None

    def _handle(self, method: str) -> None:
        st = self.state
        with st.lock:
            st.counters["requests"] += 1
        routed = self._route()
        body = self._body() if method in ("POST", "PUT") else {}
        if routed is None:
            return self._error(404, "not found", "not_found")
        prefix, parts, query = routed
        if method == "GET" and len(parts) == 2 and parts[0] == "backends":
            return self._send(200, {"backend": parts[1], "qubits": st.config.num_qubits, "status": "available"})
        if not st.auth_ok(self.headers.get("Authorization")):
            with st.lock:
                st.counters["unauthorized"] += 1
            return self._error(401, "missing or invalid API key", "unauthorized")
        if parts[:2] == ["_emulator", "stats"]:
            return self._send(200, st.stats())
        if st.injected_fault():
            return self._error(st.config.fault_status, "injected server fault", "internal_error")
        if not parts or parts[0] != "jobs":
            return self._error(404, "not found", "not_found")
        if method == "POST" and len(parts) == 1:
            return self._submit(prefix, body)
        if method == "GET" and len(parts) == 1:
            return self._list(prefix, query)
        job = st.jobs.get(parts[1]) if len(parts) >= 2 else None
        if job is None:
            return self._error(404, "job not found", "not_found")
        if method == "GET" and len(parts) == 2:
            st.advance(job)
            return self._send(200, st.view(job, prefix))
        if method == "DELETE" and len(parts) == 2:
            with st.lock:
                st.jobs.pop(job.id, None)
                st.order.remove(job.id)
            return self._send(200, {"id": job.id, "status": "deleted"})
        if method == "GET" and len(parts) == 4 and parts[2] == "results" and parts[3] in ("probabilities",
                                                                                         "histogram"):
            st.advance(job)
            if job.status != "completed":
                return self._error(409, f"job is {job.status}", "conflict")
            return self._send(200, job.probabilities)
        if method == "PUT" and parts[2:] == ["status", "cancel"]:
            st.advance(job)
            with job.lock:
                if job.status not in ("completed", "failed", "canceled"):
                    job.status = "canceled"
                    with st.lock:
                        st.counters["canceled"] += 1
            return self._send(200, {"id": job.id, "status": job.status})
        return self._error(404, "not found", "not_found")

    def _submit(self, prefix: str, body: dict | None) -> None:
        st = self.state
        if body is None:
            return self._error(400, "request body is not a JSON object", "bad_request")
        if st.rate_limited():
            return self._error(429, "too many requests", "rate_limited",
                               {"Retry-After": f"{st.config.retry_after:g}"})
        try:
            job = st.create(body)
        except (ValueError, TypeError, KeyError) as exc:
            return self._error(400, f"invalid job: {exc}", "bad_request")
        if st.config.fault_after_create_prob > 0:
            with st.lock:
                lost = st._rng.random() < st.config.fault_after_create_prob
                if lost:
                    st.counters["created_then_503"] += 1
                    st.counters["status_5xx"] += 1
            if lost:
                return self._error(503, "upstream timeout", "internal_error")
        return self._send(200, {"id": job.id, "status": job.status})

    def _list(self, prefix: str, query: dict) -> None:
        st = self.state
        limit = max(1, min(1000, int((query.get("limit") or ["25"])[0])))
        cursor = (query.get("next") or [None])[0]
        status = (query.get("status") or [None])[0]
        name = (query.get("name") or [None])[0]
        with st.lock:
            ids = list(reversed(st.order))
        if cursor:
            ids = ids[ids.index(cursor):] if cursor in ids else []
        page, nxt = [], None
        for jid in ids:
            job = st.jobs.get(jid)
            if job is None:
                continue
            if len(page) == limit:
                nxt = jid
                break
            st.advance(job)
            if (status and job.status != status) or (name and job.name != name):
                continue
            page.append(st.view(job, prefix))
        self._send(200, {"jobs": page, "next": nxt})

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_PUT(self):  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")


class Emulator:
    """The emulator server in a background thread: ``with Emulator(EmulatorConfig(token=...)) as emu: emu.url``."""

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0):
        self.state = EmulatorState(config)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """API base URL including the version prefix."""
        return f"http://{self.host}:{self.port}/v0.4"

    def start(self) -> "Emulator":
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ionq-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def fetch_stats(url: str, token: str, timeout: float = 10.0) -> dict:
    """``/_emulator/stats`` of an emulator whose API base URL is `url`."""
    import requests

    base = url.split("/v0.")[0]
    res = requests.get(f"{base}/_emulator/stats", headers={"Authorization": f"apiKey {token}"}, timeout=timeout)
    res.raise_for_status()
    return res.json()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qgan.ionq.emulator", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8999)
    p.add_argument("--token", default=None, help="accepted API token (default $IONQ_EMULATOR_TOKEN or $IONQ_API_KEY)")
    p.add_argument("--latency", type=float, default=0.5, help="seconds from submission to completion")
    p.add_argument("--ideal", action="store_true", help="no noise on qpu.* backends")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate-limit", type=int, default=0, help="submissions accepted per window (0 = unlimited)")
    p.add_argument("--rate-window", type=float, default=60.0)
    p.add_argument("--rate-limit-prob", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--fault-prob", type=float, default=0.0)
    p.add_argument("--fault-every", type=int, default=0)
    p.add_argument("--fault-status", type=int, default=503)
    p.add_argument("--fault-after-create-prob", type=float, default=0.0)
    p.add_argument("--counters-file", default=None)
    a = p.parse_args(argv)
    token = a.token or os.environ.get("IONQ_EMULATOR_TOKEN") or os.environ.get("IONQ_API_KEY")
    if not token:
        p.error("a token is required: --token, $IONQ_EMULATOR_TOKEN or $IONQ_API_KEY")
    for name in ("rate_limit_prob", "fault_prob", "fault_after_create_prob"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            p.error(f"--{name.replace('_', '-')} must be in [0, 1]")
    cfg = EmulatorConfig(token=token, latency=a.latency, ideal=a.ideal, seed=a.seed, rate_limit=a.rate_limit,
                         rate_window=a.rate_window, rate_limit_prob=a.rate_limit_prob, retry_after=a.retry_after,
                         fault_prob=a.fault_prob, fault_every=a.fault_every, fault_status=a.fault_status,
                         fault_after_create_prob=a.fault_after_create_prob, counters_file=a.counters_file)
    emu = Emulator(cfg, a.host, a.port)
    print(f"IonQ API emulator on {emu.url} (latency {a.latency:g} s)", flush=True)
    try:
        emu.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

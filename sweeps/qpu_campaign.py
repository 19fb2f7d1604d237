"""The paper's hardware experiment (spec.md §5.2) as a campaign: QCBM trials on a QPU through the gateway.

Per phase: one QCBM-WGAN trial (n = 12, one layer; ferrite 'full' connectivity = 66 MS gates, bainite 'reduced'
= 30; 3000 training images, 2000 epochs; SPSA with 50 iterations = 101 circuit executions every 50 epochs, for 5
(ferrite, to epoch 250) or 6 (bainite, to epoch 300) cycles) plus 20 Bernoulli-WGAN baseline runs (seeds 0..19),
which need no QPU. The trials are built by `sweeps.presets` (`expand` and its rule of the fields each model
ignores), so every Bernoulli baseline shares every non-QCBM field of the QCBM trial, `--set` included. The QCBM
trial's circuits run on

- ``--backend ionq``: IonQ (``$IONQ_API_KEY`` where the campaign is launched; ``--url`` or ``$IONQ_API_URL``;
  ``--qpu qpu.aria-2``),
- ``--backend emulator``: a local IonQ API emulator started by this script, its job store on disk in the run
  (same client, gateway and ledger; it survives a crash of the script like jobs survive on IonQ),
- ``--backend aer``: qiskit-aer with the Aria-2-like noise model, no gateway (a rehearsal of the training).

Examples::

    python sweeps/qpu_campaign.py --dry-run                       # circuits, jobs, shots, QPU time and cost
    python sweeps/qpu_campaign.py --preset smoke --backend emulator --storage runs --name rehearsal
    IONQ_API_KEY=... python sweeps/qpu_campaign.py --phase ferrite --backend ionq --budget-shots 600000 \\
        --max-jobs-per-minute 10 --max-in-flight 4 --storage /shared/runs --name qpu-2026
    python sweeps/qpu_campaign.py --storage /shared/runs --name qpu-2026 --resume   # after any crash

The run's own record, ``<storage>/<name>/qpu_campaign.json``, is the truth on ``--resume``: the plan, the trials
and every gateway setting (budget, rate, in-flight cap, circuits per job, price table, mitigation) are restored
from it; a flag given again must match it (or the command is refused, naming the flag); a budget can only be
raised, with ``--raise-budget``. What was spent is rebuilt from the ledger, ``<storage>/<name>/qpu/ledger.jsonl``.
Trials run as Ray Tune trials through `sweeps.trainable` (results in ``<storage>/<name>/trials/<trial_id>/``, plus
``qpu.json`` per QCBM trial: its jobs, shots, cost and mitigation). A QCBM trial refused by the budget ends with
status "failed" and failure_reason "budget_exhausted: ..."; one whose QPU job failed with "qpu_job_failed: ...".
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python sweeps/qpu_campaign.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qgan import results  # noqa: E402
from qgan.results import PHASES  # noqa: E402
from sweeps.storage import Store, is_uri, join  # noqa: E402

RECORD = "qpu_campaign.json"
RECORD_VERSION = 2

# spec.md §5.2 [R-paper]
PAPER = {
    "ferrite": {"connectivity": "full", "cycles": 5},
    "bainite": {"connectivity": "reduced", "cycles": 6},
}
PAPER_BASE = {"n": 12, "layers": 1, "train_size": 3000, "epochs": 2000, "qcbm_optimizer": "spsa",
              "spsa_iterations": 50, "update_every": 50, "spsa_calibrate": False, "qcbm_samples": 1000,
              "data_source": "synthetic", "data_seed": 0, "checkpoint_every": 50}
PAPER_BERNOULLI_RUNS = 20
SMOKE_BASE = {"n": 6, "layers": 1, "train_size": 32, "epochs": 3, "qcbm_optimizer": "spsa", "spsa_iterations": 3,
              "update_every": 1, "spsa_calibrate": False, "qcbm_samples": 64, "data_source": "synthetic",
              "data_seed": 0, "checkpoint_every": 1, "batch_size": 16, "width": 4, "eval_size": 16, "eval_every": 1,
              "n_samples_saved": 4}
SMOKE_CYCLES = {"ferrite": 2, "bainite": 2}
SMOKE_BERNOULLI_RUNS = 1
CAMPAIGN_PRESETS = ("paper", "smoke")
SPSA_CALIBRATION_CIRCUITS = 50
DEFAULT_RATE_IONQ = 10.0          # jobs per minute against IonQ
DEFAULT_CIRCUITS_PER_JOB = 50

# What --resume restores from the record and a repeated flag must match: (dest, record section).
PLAN_FLAGS = ("preset", "phase", "backend", "bernoulli_runs", "seed", "overrides")
GATEWAY_FLAGS = ("budget_shots", "budget_cost", "max_jobs_per_minute", "max_in_flight", "max_circuits_per_job",
                 "debias", "price_source", "currency", "price_1q", "price_2q", "price_per_job", "job_minimum",
                 "job_minimum_debias", "qpu", "url", "poll_interval")
EMULATOR_FLAGS = ("emulator_latency", "emulator_429_prob", "emulator_list_order")
BUDGET_FLAGS = ("budget_shots", "budget_cost")


# --------------------------------------------------------------------------------------------------- trials
def _base(preset: str) -> tuple[dict[str, Any], int]:
    if preset not in CAMPAIGN_PRESETS:
        raise ValueError(f"unknown campaign preset {preset!r}; expected one of {', '.join(CAMPAIGN_PRESETS)}")
    if preset == "paper":
        return dict(PAPER_BASE), PAPER_BERNOULLI_RUNS
    return dict(SMOKE_BASE), SMOKE_BERNOULLI_RUNS


def campaign_trials(preset: str, phases: list[str], backend: str, bernoulli_runs: int | None = None,
                    overrides: dict[str, Any] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Trial config dicts (each with `_trial_id`): per phase one QCBM trial and the Bernoulli baseline runs.

    Built as sweep presets (`sweeps.presets.Preset`, `apply_overrides`, `expand`): both arms get the same base and
    the same overrides, and `expand` drops what the Bernoulli arm ignores (`qgan.results.ignored_fields`), so each
    baseline agrees with the QCBM trial in every field it reads (the analysis pairs them).
    """
    from sweeps.presets import Preset, apply_overrides, expand

    overrides = dict(overrides or {})
    for key in ("seed", "model", "models", "phase"):
        if key in overrides:
            raise ValueError(f"--set {key}: the campaign sets it (use --seed, --bernoulli-runs or --phase)")
    base, default_runs = _base(preset)
    runs = default_runs if bernoulli_runs is None else int(bernoulli_runs)
    if runs < 0:
        raise ValueError("--bernoulli-runs must be >= 0")
    out: list[dict[str, Any]] = []
    for phase in phases:
        cycles = PAPER[phase]["cycles"] if preset == "paper" else SMOKE_CYCLES[phase]
        b = {**base, "phase": phase, "connectivity": PAPER[phase]["connectivity"],
             "backend": "aer-noisy" if backend == "aer" else "ionq"}
        if "qcbm_epochs" not in overrides:  # the cycles follow an overridden update_every
            b["qcbm_epochs"] = cycles * int(overrides.get("update_every", b["update_every"]))
        qcbm = apply_overrides(Preset(f"qpu-{preset}", phase, b, {"seed": [int(seed)]}, models=("qcbm",)),
                               overrides)
        out += expand(qcbm)
        if runs:
            bern = apply_overrides(Preset(f"qpu-{preset}", phase, b, {"seed": list(range(runs))},
                                          models=("bernoulli",)), overrides)
            out += expand(bern)
    return out


# --------------------------------------------------------------------------------------------------- plan
def _pricer(cfg, estimate=None):
    """(circuits in the job, n1q, n2q, qubits, shots) -> (cost, source): IonQ's estimate where `estimate` is given
    (a callable like `IonQConnection.estimate`), else / on failure the price table of `cfg` (a GatewayConfig)."""
    cache: dict[tuple, tuple[float, str]] = {}

    def price(k: int, n1: int, n2: int, qubits: int, shots: int) -> tuple[float, str]:
        key = (k, n1, n2, qubits, shots)
        if key not in cache:
            table = cfg.table_cost([(n1, n2)] * k, shots)
            if estimate is None:
                cache[key] = (table, "table")
            else:
                try:
                    cost, _unit = estimate(k * n1, k * n2, qubits, shots, debias=cfg.debias)
                    cache[key] = (max(cost, cfg.job_minimum_debias if cfg.debias else cfg.job_minimum), "api")
                except Exception as exc:  # noqa: BLE001 - flagged fallback
                    from qgan.ionq import scrub

                    cache[key] = (table, f"table (estimate failed: {scrub(exc)})")
        return cache[key]

    return price


def circuit_plan(trial: dict[str, Any], price_1q: float | None = None, price_2q: float | None = None,
                 price_job: float | None = None, *, gateway=None, estimate=None) -> dict[str, Any]:
    """What one QCBM trial will run: circuits, jobs, shots, native gate counts, QPU time (s) and cost.

    Circuits = 1 (the initial latent pool) + cycles x (2K + 1) (SPSA, K iterations; + 50 with calibration) or
    1 + cycles x (steps x 2P + 1) (fd; the pool is refilled after each update). Jobs: each request (the pool, an
    SPSA iteration's 2 circuits, its final evaluation, an fd step's 2P circuits) goes out as ceil(B / cap) jobs,
    cap = `gateway.max_circuits_per_job`. QPU time per circuit = shots x (n1q x 135 us + n2q x 600 us) (Aria-2
    gate times, spec.md §5.2). Cost: per job, IonQ's estimate when `estimate` is given, else the price table of
    `gateway` (a GatewayConfig; or the three legacy prices).
    """
    import torch

    from qgan.ionq import circuit_to_ionq_json, gate_counts, qpu_seconds
    from qgan.quantum import Ansatz
    from sweeps.gateway import GatewayConfig

    if gateway is None:
        gateway = GatewayConfig(campaign="plan", ledger_dir="/nonexistent",
                                price_1q_gate_shot=0.000220 if price_1q is None else price_1q,
                                price_2q_gate_shot=0.000975 if price_2q is None else price_2q,
                                price_per_job=0.0 if price_job is None else price_job)
    a = Ansatz(int(trial["n"]), layers=int(trial.get("layers", 1)), connectivity=trial["connectivity"])
    theta = a.random_start(torch.Generator().manual_seed(0))  # generic angles: no gate folds away
    instr, _ = circuit_to_ionq_json(a.to_native(theta, measure=True))
    n1, n2 = gate_counts(instr)
    cycles = int(trial["qcbm_epochs"]) // int(trial["update_every"])
    shots = int(trial["qcbm_samples"])
    cap = gateway.max_circuits_per_job
    optimizer = trial.get("qcbm_optimizer", "spsa")
    if optimizer == "fd":
        steps = int(trial.get("qcbm_steps", 1))
        requests = [1] + cycles * ([2 * a.num_params] * steps + [1])
        k = steps
    elif optimizer == "exact":
        requests, k = [1], 0
    else:
        k = int(trial["spsa_iterations"])
        calib = [SPSA_CALIBRATION_CIRCUITS] if trial.get("spsa_calibrate") else []
        requests = [1] + cycles * (calib + [2] * k + [1])
    circuits = sum(requests)
    price = _pricer(gateway, estimate)
    jobs, cost, sources = 0, 0.0, set()
    for b in requests:
        full, rest = divmod(b, cap)
        for size, count in ((cap, full), (rest, 1 if rest else 0)):
            if count:
                c, src = price(size, n1, n2, a.n, shots)
                jobs += count
                cost += count * c
                sources.add(src)
    return {"trial_id": trial["_trial_id"], "phase": trial["phase"], "n": a.n, "connectivity": a.connectivity,
            "params": a.num_params, "gates_1q": n1, "gates_2q": n2, "cycles": cycles, "optimizer": optimizer,
            "spsa_iterations": k, "circuits": circuits, "jobs": jobs, "max_circuits_per_job": cap,
            "shots_per_circuit": shots, "total_shots": circuits * shots,
            "qpu_seconds": circuits * qpu_seconds(n1, n2, shots), "cost": cost, "currency": gateway.currency,
            "cost_source": "; ".join(sorted(sources)), "debias": gateway.debias}


def print_plan(trials: list[dict[str, Any]], args: argparse.Namespace, gateway=None,
               estimate=None) -> list[dict[str, Any]]:
    gateway = gateway or gateway_config(args, "plan", "/nonexistent", None)
    plans = [circuit_plan(t, gateway=gateway, estimate=estimate) for t in trials if t["model"] == "qcbm"]
    bern = sum(1 for t in trials if t["model"] == "bernoulli")
    rate = args.max_jobs_per_minute
    print(f"QPU campaign ({args.preset}): {len(plans)} QCBM trial(s) on the QPU, {bern} Bernoulli baseline run(s) "
          f"(no QPU); debias {'on' if gateway.debias else 'off'}; up to {gateway.max_circuits_per_job} circuit(s) "
          f"per job; rate {'unlimited' if not rate else f'{rate:g} jobs/min'}")
    for p in plans:
        print(f"  {p['trial_id']}: n={p['n']} {p['connectivity']} ({p['params']} parameters), native gates per "
              f"circuit {p['gates_1q']} 1q + {p['gates_2q']} 2q (MS)")
        if p["optimizer"] == "spsa":
            print(f"    {p['cycles']} SPSA cycle(s) x (2 x {p['spsa_iterations']} + 1) + 1 initial pool = "
                  f"{p['circuits']} circuits x {p['shots_per_circuit']} shots = {p['total_shots']:,} shots")
        else:
            print(f"    {p['cycles']} {p['optimizer']} update(s): {p['circuits']} circuits x "
                  f"{p['shots_per_circuit']} shots = {p['total_shots']:,} shots")
        wall = f", at least {60 * p['jobs'] / rate / 3600:.2f} h of submission at the rate limit" if rate else ""
        print(f"    {p['jobs']} job(s) (<= {p['max_circuits_per_job']} circuits each){wall}")
        print(f"    estimated QPU gate time {p['qpu_seconds'] / 3600:.2f} h ({p['qpu_seconds']:.0f} s; 135 us/1q, "
              f"600 us/2q gate); estimated cost {p['cost']:,.2f} {p['currency']} ({p['cost_source']})")
    tot_shots = sum(p["total_shots"] for p in plans)
    table = all(p["cost_source"] == "table" for p in plans)
    print(f"  total: {sum(p['circuits'] for p in plans)} circuits in {sum(p['jobs'] for p in plans)} jobs, "
          f"{tot_shots:,} shots, {sum(p['qpu_seconds'] for p in plans) / 3600:.2f} h QPU gate time, cost "
          f"{sum(p['cost'] for p in plans):,.2f} {gateway.currency}")
    if table and plans:
        print(f"  note: cost from the built-in price table ({gateway.price_1q_gate_shot:g}/1q-gate-shot, "
              f"{gateway.price_2q_gate_shot:g}/2q-gate-shot, job minimum {gateway.job_minimum:g} "
              f"({gateway.job_minimum_debias:g} debiased), {gateway.price_per_job:g}/job, {gateway.currency}): "
              f"placeholders, not IonQ's quote; with a token, --backend ionq --price-source api asks IonQ")
    if args.budget_shots is not None and tot_shots > args.budget_shots:
        print(f"  WARNING: --budget-shots {args.budget_shots:,} is below the plan's {tot_shots:,} shots: the QCBM "
              f"trial(s) will stop with status failed (budget_exhausted)")
    return plans


# --------------------------------------------------------------------------------------------------- trainable
def campaign_trial(config: dict[str, Any], *, run_dir: str, threads: int | None = None, backend: Any = None):
    """`sweeps.trainable.train_trial`; a budget refusal or a failed QPU job ends the trial normally with status
    "failed" and failure_reason "budget_exhausted: ..." / "qpu_job_failed: ..." (so Tune does not retry it and
    prints no traceback), recorded by `trainable.record_refusal`."""
    from sweeps import trainable

    try:
        trainable.train_trial(config, run_dir=run_dir, threads=threads, backend=backend)
    except Exception as exc:  # train_trial records them itself; this covers callers that bypass it
        if not getattr(exc, "ends_trial_as", None):
            raise
        trainable.record_refusal(config, run_dir, exc)


# --------------------------------------------------------------------------------------------------- CLI
class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written; every option's default after its help (unless the help says it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "default" in text or action.default in (None, False, argparse.SUPPRESS) \
                or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweeps/qpu_campaign.py", description=__doc__, formatter_class=_HelpFormatter,
                                allow_abbrev=False)
    g = p.add_argument_group("campaign (saved with the run; --resume restores them)")
    g.add_argument("--preset", choices=CAMPAIGN_PRESETS, default="paper",
                   help="paper: spec.md §5.2 (n=12, 2000 epochs); smoke: a minutes-long rehearsal")
    g.add_argument("--phase", choices=("ferrite", "bainite", "both"), default="both", help="phase(s) to run")
    g.add_argument("--backend", choices=("ionq", "emulator", "aer"), default="emulator",
                   help="where the QCBM circuits run: IonQ, the local emulator (a rehearsal) or aer (no gateway)")
    g.add_argument("--bernoulli-runs", type=int, default=None,
                   help="Bernoulli baseline runs (seeds 0..R-1) per phase (default: paper 20, smoke 1)")
    g.add_argument("--seed", type=int, default=0, help="seed of the QCBM trial")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a trial config field of every trial of the campaign (repeatable), e.g. "
                        "--set spsa_a=0.3 --set width=32; QCBM-only fields reach the QCBM trial only")
    q = p.add_argument_group("QPU gateway (saved with the run; a budget can only be raised, with --raise-budget)")
    q.add_argument("--budget-shots", type=int, default=None,
                   help="hard cap on shots committed by the campaign (default: none); shots count per circuit")
    q.add_argument("--budget-cost", type=float, default=None,
                   help="hard cap on the estimated cost, in --currency (default: none)")
    q.add_argument("--max-jobs-per-minute", type=float, default=None,
                   help=f"rate limit on job submissions (sliding window) (default: {DEFAULT_RATE_IONQ:g} for ionq, "
                        f"none for the emulator; 0: none)")
    q.add_argument("--max-in-flight", type=int, default=4, help="jobs submitted and not yet finished, at most")
    q.add_argument("--max-circuits-per-job", type=int, default=DEFAULT_CIRCUITS_PER_JOB,
                   help="the circuits of one optimiser request go out as IonQ multi-circuit jobs of at most this "
                        "many circuits (1: one job per circuit)")
    q.add_argument("--debias", choices=("on", "off"), default="off",
                   help="IonQ error mitigation (debiasing), sent explicitly with every job; on needs >= 500 shots "
                        "per circuit and raises IonQ's per-job minimum price (docs/qpu.md)")
    q.add_argument("--price-source", choices=("auto", "api", "table"), default="auto",
                   help="job cost from IonQ's estimate endpoint (api) or the built-in price table; auto: api for "
                        "ionq and the emulator, table for dry runs without a token")
    q.add_argument("--currency", default="USD", help="currency of the price table and of --budget-cost")
    q.add_argument("--price-1q", type=float, default=0.000220, help="price table: per 1-qubit-gate-shot")
    q.add_argument("--price-2q", type=float, default=0.000975, help="price table: per 2-qubit-gate-shot")
    q.add_argument("--price-per-job", type=float, default=0.0, help="price table: fixed price added per job")
    q.add_argument("--job-minimum", type=float, default=0.0, help="price table: minimum price of a job")
    q.add_argument("--job-minimum-debias", type=float, default=0.0,
                   help="price table: minimum price of a debiased job")
    q.add_argument("--qpu", default="qpu.aria-2", help="IonQ backend name")
    q.add_argument("--url", default=None,
                   help="IonQ API base URL for --backend ionq (default: $IONQ_API_URL or https://api.ionq.co/v0.4)")
    q.add_argument("--poll-interval", type=float, default=None,
                   help="seconds between job status polls (default: 5 for ionq, 0.2 for the emulator)")
    e = p.add_argument_group("emulator rehearsal (saved with the run)")
    e.add_argument("--emulator-latency", type=float, default=0.2, help="seconds from submission to completion")
    e.add_argument("--emulator-429-prob", type=float, default=0.0, help="probability of an injected 429")
    e.add_argument("--emulator-list-order", choices=("newest", "shuffled"), default="newest",
                   help="order in which the emulator lists jobs")
    r = p.add_argument_group("this invocation")
    r.add_argument("--storage", default=os.environ.get("QGAN_RUNS_DIR", "~/qgan-runs"),
                   help="results root (a POSIX directory: the gateway ledger needs append + fsync; "
                        "default: $QGAN_RUNS_DIR or ~/qgan-runs)")
    r.add_argument("--name", default=None,
                   help="run folder under --storage (default: qpu-<preset>-<UTC time>; with --resume: the latest "
                        "qpu-* run)")
    r.add_argument("--resume", action="store_true",
                   help="continue the run from its own record and ledger: nothing else needs repeating")
    r.add_argument("--raise-budget", action="store_true",
                   help="with --resume: allow a larger --budget-shots / --budget-cost than the run's saved one")
    r.add_argument("--dry-run", action="store_true",
                   help="print circuits, jobs, shots, QPU time and cost; run nothing (with --resume: the run's plan)")
    r.add_argument("--detached-gateway", action="store_true",
                   help="start the gateway actor detached (it outlives this driver; stop it with ray.kill)")
    r.add_argument("--max-failures", type=int, default=3, help="retries per crashed trial (from its checkpoint)")
    r.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial")
    r.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded local Ray (default: all)")
    r.add_argument("--address", default=None,
                   help="Ray cluster address (default: $RAY_ADDRESS, else a cluster started here with `ray start`, "
                        "else an embedded local Ray)")
    r.add_argument("--local", action="store_true", help="always start an embedded local Ray")
    r.add_argument("--verbose", action="store_true", help="Ray Tune's per-trial boxes and Ray's INFO logs too")
    r.add_argument("--mlflow", default=None, metavar="URI", help="also log every trial to MLflow at this URI")
    r.add_argument("--ray-temp-dir", default=None, help="temp dir of the embedded local Ray (default: Ray's)")
    return p


def given_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the options written on the command line (not left at their defaults)."""
    out = set()
    for tok in argv:
        if tok == "--":
            break
        if tok.startswith("--"):
            action = parser._option_string_actions.get(tok.split("=", 1)[0])
            if action is not None:
                out.add(action.dest)
    return out


def _flag(dest: str) -> str:
    return "--set" if dest == "overrides" else "--" + dest.replace("_", "-")


def _saved_value(dest: str, args: argparse.Namespace) -> Any:
    """The value of `dest` as the record stores it (normalised)."""
    from sweeps.presets import parse_set

    v = getattr(args, dest)
    if dest == "overrides":
        return parse_set(v) if isinstance(v, list) else dict(v or {})
    return v


def resolve_defaults(args: argparse.Namespace) -> None:
    """Fill the backend-dependent defaults (rate limit, poll interval, price source) of a new run."""
    if args.max_jobs_per_minute is None:
        args.max_jobs_per_minute = DEFAULT_RATE_IONQ if args.backend == "ionq" else 0.0
    if args.poll_interval is None:
        args.poll_interval = 5.0 if args.backend == "ionq" else 0.2
    if args.price_source == "auto":
        args.price_source = "api" if args.backend in ("ionq", "emulator") else "table"


def restore(args: argparse.Namespace, given: set[str], record: dict[str, Any], where: str) -> list[str]:
    """Make `args` the run's saved settings; refuse a repeated flag that differs (except a budget raised with
    --raise-budget). Returns the notes to print (budget raises)."""
    notes: list[str] = []
    saved = {**record.get("campaign", {}), **record.get("gateway", {}), **record.get("emulator", {})}
    for dest in (*PLAN_FLAGS, *GATEWAY_FLAGS, *EMULATOR_FLAGS):
        if dest not in saved:
            continue
        old = saved[dest]
        if dest in given:
            new = _saved_value(dest, args)
            if new != old:
                if dest in BUDGET_FLAGS and args.raise_budget:
                    if old is None:
                        raise ValueError(f"--resume: {_flag(dest)} {new}: the run has no {dest.replace('_', ' ')} "
                                         f"(unlimited); a budget can only be raised")
                    if new is None or new < old:
                        raise ValueError(f"--resume: {_flag(dest)} {new} is below the run's saved {old}; "
                                         f"--raise-budget only raises it")
                    notes.append(f"{_flag(dest)} raised from {old} to {new} (--raise-budget)")
                    record.setdefault("budget_changes", []).append(
                        {"flag": _flag(dest), "from": old, "to": new, "time": time.time()})
                    record["gateway"][dest] = new
                    continue
                hint = " (add --raise-budget to raise it)" if dest in BUDGET_FLAGS else ""
                raise ValueError(f"--resume: {_flag(dest)} {_show(new)} differs from the run's saved "
                                 f"{_show(old)} ({where}); leave the flag out to continue with the saved "
                                 f"setting{hint}")
        setattr(args, dest, old)
    if args.raise_budget and not (given & set(BUDGET_FLAGS)):
        raise ValueError("--raise-budget needs --budget-shots or --budget-cost")
    return notes


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return " ".join(f"{k}={json.dumps(x)}" for k, x in v.items()) or "(none)"
    return str(v)


def gateway_config(args: argparse.Namespace, campaign: str, ledger_dir: str, url: str | None):
    from sweeps.gateway import GatewayConfig

    rate = float(args.max_jobs_per_minute or 0.0)
    per = max(1, int(rate)) if rate > 0 else 0  # R jobs per minute -> `per` jobs per 60 * per / R s
    price_source = args.price_source if args.price_source != "auto" else "table"
    return GatewayConfig(campaign=campaign, ledger_dir=ledger_dir, url=url, backend=args.qpu,
                         max_jobs_per_period=per, period_s=60.0 * per / rate if per else 60.0,
                         max_in_flight=args.max_in_flight, max_circuits_per_job=args.max_circuits_per_job,
                         debias=args.debias == "on", budget_shots=args.budget_shots, budget_cost=args.budget_cost,
                         price_source=price_source, currency=args.currency, price_1q_gate_shot=args.price_1q,
                         price_2q_gate_shot=args.price_2q, price_per_job=args.price_per_job,
                         job_minimum=args.job_minimum, job_minimum_debias=args.job_minimum_debias,
                         poll_interval_s=args.poll_interval if args.poll_interval is not None else 2.0)


def make_record(args: argparse.Namespace, argv: list[str], phases: list[str], trials: list[dict[str, Any]],
                plans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": RECORD_VERSION, "created": time.time(), "argv": list(argv), "phases": phases,
            "campaign": {k: _saved_value(k, args) for k in PLAN_FLAGS},
            "gateway": {k: _saved_value(k, args) for k in GATEWAY_FLAGS},
            "emulator": {k: _saved_value(k, args) for k in EMULATOR_FLAGS},
            "trials": trials, "plans": plans, "starts": []}


def check_args(args: argparse.Namespace, trials: list[dict[str, Any]]) -> None:
    for name in ("max_in_flight", "max_circuits_per_job"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0")
    if args.max_jobs_per_minute is not None and args.max_jobs_per_minute < 0:
        raise ValueError("--max-jobs-per-minute must be >= 0 (0: no limit)")
    if args.debias == "on":
        from sweeps.gateway import DEBIAS_MIN_SHOTS

        low = [t["_trial_id"] for t in trials if t["model"] == "qcbm" and int(t["qcbm_samples"]) < DEBIAS_MIN_SHOTS]
        if low:
            raise ValueError(f"--debias on needs qcbm_samples >= {DEBIAS_MIN_SHOTS} (IonQ cannot debias fewer "
                             f"shots); {low[0]} has fewer: --set qcbm_samples=... or --debias off")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    given = given_flags(build_parser(), argv)
    from sweeps.driver import resolve_run, validate

    record: dict[str, Any] | None = None
    notes: list[str] = []
    if args.resume:
        prefix = f"qpu-{args.preset}" if "preset" in given else "qpu"
        storage, name = resolve_run(args.storage, args.name, prefix, True)
        run_dir = join(storage, name)
        store = Store(run_dir)
        if not store.exists(RECORD):
            raise FileNotFoundError(f"--resume: {join(run_dir, RECORD)} does not exist (not a QPU campaign run)")
        record = store.read_json(RECORD)
        if record.get("version") != RECORD_VERSION or not isinstance((record.get("trials") or [None])[0], dict):
            raise ValueError(f"--resume: {join(run_dir, RECORD)} was written by an older version without its "
                             f"settings; it cannot be resumed safely (start a new run)")
        notes = restore(args, given, record, join(run_dir, RECORD))
        trials = record["trials"]
        phases = record["phases"]
    else:
        if args.raise_budget:
            raise ValueError("--raise-budget only applies with --resume")
        resolve_defaults(args)
        from sweeps.presets import parse_set

        phases = list(PHASES) if args.phase == "both" else [args.phase]
        trials = campaign_trials(args.preset, phases, args.backend, args.bernoulli_runs,
                                 parse_set(args.overrides), args.seed)
    check_args(args, trials)
    estimate = None
    if args.dry_run and args.price_source == "api" and args.backend == "ionq":
        estimate = _api_estimator(args)
    elif args.dry_run and args.price_source == "api":
        args.price_source = "table"  # no API to ask before the emulator runs
    plans = print_plan(trials, args, estimate=estimate)
    for n in notes:
        print(f"note: {n}")
    if args.dry_run:
        return 0
    validate(trials)
    if record is None:
        storage, name = resolve_run(args.storage, args.name, f"qpu-{args.preset}", False)
        run_dir = join(storage, name)
        store = Store(run_dir)
        record = make_record(args, argv, phases, trials, plans)
    use_gateway = args.backend in ("ionq", "emulator")
    if use_gateway and is_uri(run_dir):
        raise ValueError("the QPU gateway ledger needs a POSIX --storage directory (shared by the nodes), not a URI")
    ledger_dir = os.path.join(run_dir, "qpu")
    if use_gateway:
        from sweeps.gateway import ledger_summary

        used = ledger_summary(os.path.join(ledger_dir, "ledger.jsonl"))
        if args.resume:
            print(f"ledger: {used['used_shots']:,} shots committed so far (budget {args.budget_shots}), "
                  f"{used['jobs']} job(s), {used['circuits']} circuit(s), states {used['states']}", flush=True)
    record["starts"].append({"time": time.time(), "argv": list(argv), "resume": bool(args.resume)})
    store.write_text(results.json_text(record), RECORD)  # the run's record exists before anything is launched

    import ray
    from ray import tune

    from sweeps.gateway import GatewayBackendFactory, start_gateway

    emulator = None
    started_ray = False
    gateway = None
    try:
        url = args.url
        if use_gateway and args.backend == "emulator":
            from qgan.ionq.emulator import Emulator, EmulatorConfig

            # A throw-away token shared with the gateway through the environment (never printed). The job store
            # is on disk in the run, so jobs survive this process as they survive on IonQ.
            os.environ.setdefault("IONQ_API_KEY", "emu-" + secrets.token_hex(16))
            emulator = Emulator(EmulatorConfig(token=os.environ["IONQ_API_KEY"], latency=args.emulator_latency,
                                               rate_limit_prob=args.emulator_429_prob, retry_after=0.5,
                                               list_order=args.emulator_list_order,
                                               store_dir=os.path.join(ledger_dir, "emulator"))).start()
            url = emulator.url
            print(f"IonQ API emulator on {url} (job store {os.path.join(ledger_dir, 'emulator')})", flush=True)
        if not ray.is_initialized():
            from sweeps.driver import init_ray

            init_ray(args)
            started_ray = True
        factory = None
        campaign = f"{name}".replace("/", "-")
        if use_gateway:
            gcfg = gateway_config(args, campaign, ledger_dir, url)
            gateway = start_gateway(gcfg, detached=args.detached_gateway)
            factory = GatewayBackendFactory(campaign)
        trainable = tune.with_resources(
            tune.with_parameters(campaign_trial, run_dir=run_dir, threads=max(1, int(args.cpus_per_trial)),
                                 backend=factory),
            {"cpu": args.cpus_per_trial})
        from sweeps.driver import fit_grid, report

        fitted = fit_grid(trainable, trials, args, run_dir, max_failures=args.max_failures, reuse_actors=False)
        ok = report(run_dir, trials, fitted)
        for r in fitted:  # one line per trial Tune saw crash (its traceback is in the trial's error file)
            if r.error:
                from sweeps.trainable import config_trial_id

                first = str(r.error).strip().splitlines()[-1] if str(r.error).strip() else type(r.error).__name__
                print(f"trial {config_trial_id(r.config or {})} crashed: {first}", flush=True)
        if gateway is not None:
            st = ray.get(gateway.status.remote())
            store.write_text(json.dumps(st, indent=2), "qpu", "gateway_status.json")
            write_trial_qpu_files(store, os.path.join(ledger_dir, "ledger.jsonl"), trials)
            print(f"QPU gateway: {st['used_shots']:,} shots committed (budget {st['budget_shots']}), estimated cost "
                  f"{st['used_cost']:,.2f} {st['currency']}, jobs {st['jobs']} ({st['circuits']} circuits), "
                  f"debias {'on' if st['debias'] else 'off'}, restarts {st['stats']['restarts']}")
        return 0 if ok else 1
    finally:
        if started_ray:
            ray.shutdown()
        if emulator is not None:
            emulator.stop()


def _api_estimator(args: argparse.Namespace):
    """IonQ's estimate for the dry run (None without a token: the table is used, flagged)."""
    from qgan.ionq import IonQConnection, resolve_token

    try:
        resolve_token()
    except ValueError:
        print("note: no $IONQ_API_KEY: the dry run prices jobs with the built-in table", flush=True)
        return None
    return IonQConnection(url=args.url, backend=args.qpu).estimate


def write_trial_qpu_files(store: Store, ledger_path: str, trials: list[dict[str, Any]]) -> None:
    """``trials/<id>/qpu.json`` per QCBM trial from the ledger: jobs, circuits, shots, cost and its source, the
    currency and the error mitigation its jobs ran with."""
    from sweeps.gateway import Ledger

    per: dict[str, dict[str, Any]] = {}
    for r in Ledger.read(ledger_path):
        if r.get("type") != "intent":
            continue
        d = per.setdefault(r["trial"], {"jobs": 0, "circuits": 0, "shots": 0, "cost": 0.0, "cost_sources": [],
                                        "debias": [], "currency": r.get("currency")})
        k = len(r.get("circuits") or [r.get("circuit")])
        d["jobs"] += 1
        d["circuits"] += k
        d["shots"] += k * int(r["shots"])
        d["cost"] += float(r["cost"])
        for key, v in (("cost_sources", r.get("cost_source", "table")), ("debias", r.get("debias", False))):
            if v not in d[key]:
                d[key].append(v)
    for t in trials:
        tid = t["_trial_id"]
        if t["model"] == "qcbm" and tid in per and store.exists("trials", tid):
            results.write_json(store.path("trials", tid, "qpu.json"), per[tid])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from qgan.cli_errors import run_cli

    return run_cli("qpu_campaign", lambda: run(args, argv), interrupted="continue with --resume --name <run>")


if __name__ == "__main__":
    sys.exit(main())

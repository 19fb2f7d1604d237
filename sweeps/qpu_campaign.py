"""The paper's hardware experiment (spec.md §5.2) as a campaign: QCBM trials on a QPU through the gateway.

Per phase: one QCBM-WGAN trial (n = 12, one layer; ferrite 'full' connectivity = 66 MS gates, bainite 'reduced'
= 30; 3000 training images, 2000 epochs; SPSA with 50 iterations = 101 circuit executions every 50 epochs, for 5
(ferrite, to epoch 250) or 6 (bainite, to epoch 300) cycles) plus 20 Bernoulli-WGAN baseline runs (seeds 0..19),
which need no QPU. The QCBM trial's circuits run on

- ``--backend ionq``: IonQ (``$IONQ_API_KEY``; ``--url`` or ``$IONQ_API_URL``; ``--qpu qpu.aria-2``),
- ``--backend emulator``: a local IonQ API emulator started by this script (same client, gateway and ledger),
- ``--backend aer``: qiskit-aer with the Aria-2-like noise model, no gateway (a rehearsal of the training).

Examples::

    python sweeps/qpu_campaign.py --dry-run                       # circuits, shots, QPU time and cost; runs nothing
    python sweeps/qpu_campaign.py --preset smoke --backend emulator --storage runs
    IONQ_API_KEY=... python sweeps/qpu_campaign.py --phase ferrite --backend ionq --budget-shots 600000 \\
        --max-jobs-per-minute 10 --max-in-flight 4 --storage /shared/runs --name qpu-2026
    python sweeps/qpu_campaign.py ... --name qpu-2026 --resume    # after a crash: no job is submitted twice

Trials run as Ray Tune trials through `sweeps.trainable` (results in ``<storage>/<name>/trials/<trial_id>/``);
the gateway ledger is ``<storage>/<name>/qpu/ledger.jsonl``. A QCBM trial refused by the budget ends with
status "failed" and failure_reason "budget_exhausted: ...".
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python sweeps/qpu_campaign.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qgan.results import PHASES  # noqa: E402
from sweeps.storage import Store, is_uri, join  # noqa: E402

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


def campaign_trials(preset: str, phases: list[str], backend: str, bernoulli_runs: int | None = None,
                    overrides: dict[str, Any] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Trial config dicts (each with `_trial_id`): per phase one QCBM trial and the Bernoulli baseline runs."""
    from sweeps.presets import trial_id

    base = dict(PAPER_BASE if preset == "paper" else SMOKE_BASE)
    runs = (PAPER_BERNOULLI_RUNS if preset == "paper" else SMOKE_BERNOULLI_RUNS) if bernoulli_runs is None \
        else int(bernoulli_runs)
    out = []
    for phase in phases:
        cycles = PAPER[phase]["cycles"] if preset == "paper" else SMOKE_CYCLES[phase]
        q = {**base, "phase": phase, "model": "qcbm", "seed": seed, "connectivity": PAPER[phase]["connectivity"],
             "backend": "aer-noisy" if backend == "aer" else "ionq"}
        q["qcbm_epochs"] = cycles * q["update_every"]
        q.update(overrides or {})
        q["_trial_id"] = trial_id(q)
        out.append(q)
        bern_base = {k: v for k, v in base.items() if k not in ("qcbm_optimizer", "spsa_iterations", "update_every",
                                                               "spsa_calibrate", "qcbm_samples", "layers")}
        for s in range(runs):
            b = {**bern_base, "phase": phase, "model": "bernoulli", "seed": s}
            b.update({k: v for k, v in (overrides or {}).items() if k in bern_base or k in ("lr_g", "lr_d")})
            b["_trial_id"] = trial_id(b)
            out.append(b)
    return out


def circuit_plan(trial: dict[str, Any], price_1q: float, price_2q: float, price_job: float) -> dict[str, Any]:
    """What one QCBM trial will run: circuits, shots, native gate counts, QPU time (s) and cost.

    Circuits = 1 (the initial latent pool) + cycles x (2K + 1) (SPSA, K iterations, no calibration).
    QPU time per circuit = shots x (n1q x 135 us + n2q x 600 us) (Aria-2 gate times, spec.md §5.2).
    """
    import torch

    from qgan.ionq import circuit_to_ionq_json, gate_counts, qpu_seconds
    from qgan.quantum import Ansatz

    a = Ansatz(int(trial["n"]), layers=int(trial.get("layers", 1)), connectivity=trial["connectivity"])
    theta = a.random_start(torch.Generator().manual_seed(0))  # generic angles: no gate folds away
    instr, _ = circuit_to_ionq_json(a.to_native(theta, measure=True))
    n1, n2 = gate_counts(instr)
    cycles = int(trial["qcbm_epochs"]) // int(trial["update_every"])
    k = int(trial["spsa_iterations"])
    extra = 50 if trial.get("spsa_calibrate") else 0
    circuits = 1 + cycles * (2 * k + 1 + extra)
    shots = int(trial["qcbm_samples"])
    per_circuit_cost = shots * (n1 * price_1q + n2 * price_2q) + price_job
    return {"trial_id": trial["_trial_id"], "phase": trial["phase"], "n": a.n, "connectivity": a.connectivity,
            "params": a.num_params, "gates_1q": n1, "gates_2q": n2, "cycles": cycles, "spsa_iterations": k,
            "circuits": circuits, "shots_per_circuit": shots, "total_shots": circuits * shots,
            "qpu_seconds": circuits * qpu_seconds(n1, n2, shots), "cost": circuits * per_circuit_cost}


def print_plan(trials: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    plans = [circuit_plan(t, args.price_1q, args.price_2q, args.price_per_job) for t in trials
             if t["model"] == "qcbm"]
    bern = sum(1 for t in trials if t["model"] == "bernoulli")
    print(f"QPU campaign ({args.preset}): {len(plans)} QCBM trial(s) on the QPU, {bern} Bernoulli baseline run(s) "
          f"(no QPU)")
    for p in plans:
        print(f"  {p['trial_id']}: n={p['n']} {p['connectivity']} ({p['params']} parameters), native gates per "
              f"circuit {p['gates_1q']} 1q + {p['gates_2q']} 2q (MS)")
        print(f"    {p['cycles']} SPSA cycle(s) x (2 x {p['spsa_iterations']} + 1) + 1 initial pool = "
              f"{p['circuits']} circuits x {p['shots_per_circuit']} shots = {p['total_shots']:,} shots")
        print(f"    estimated QPU gate time {p['qpu_seconds'] / 3600:.2f} h ({p['qpu_seconds']:.0f} s; 135 us/1q, "
              f"600 us/2q gate); estimated cost {p['cost']:,.2f} (at {args.price_1q:g}/1q-gate-shot, "
              f"{args.price_2q:g}/2q-gate-shot, {args.price_per_job:g}/job)")
    tot_shots = sum(p["total_shots"] for p in plans)
    print(f"  total: {sum(p['circuits'] for p in plans)} circuits, {tot_shots:,} shots, "
          f"{sum(p['qpu_seconds'] for p in plans) / 3600:.2f} h QPU gate time, cost {sum(p['cost'] for p in plans):,.2f}")
    if args.budget_shots is not None and tot_shots > args.budget_shots:
        print(f"  WARNING: --budget-shots {args.budget_shots:,} is below the plan's {tot_shots:,} shots: the QCBM "
              f"trial(s) will stop with status failed (budget_exhausted)")
    return plans


# --------------------------------------------------------------------------------------------------- trainable
def campaign_trial(config: dict[str, Any], *, run_dir: str, threads: int | None = None, backend: Any = None):
    """`sweeps.trainable.train_trial`; a budget refusal ends the trial normally with status "failed" and
    failure_reason "budget_exhausted: ..." (so Tune does not retry it), recorded by `trainable.record_refusal`."""
    from sweeps.gateway import BudgetExceeded
    from sweeps import trainable

    try:
        trainable.train_trial(config, run_dir=run_dir, threads=threads, backend=backend)
    except BudgetExceeded as exc:  # train_trial records it itself; this covers callers that bypass it
        trainable.record_refusal(config, run_dir, exc)


# --------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweeps/qpu_campaign.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", choices=("ferrite", "bainite", "both"), default="both")
    p.add_argument("--backend", choices=("ionq", "emulator", "aer"), default="emulator")
    p.add_argument("--preset", choices=("paper", "smoke"), default="paper")
    p.add_argument("--storage", default=os.environ.get("QGAN_RUNS_DIR", "~/qgan-runs"),
                   help="results root (a POSIX directory: the gateway ledger needs append + fsync)")
    p.add_argument("--name", default=None, help="run folder under --storage (default qpu-<preset>-<UTC time>)")
    p.add_argument("--resume", action="store_true", help="continue the named (or latest) run from its ledger")
    p.add_argument("--dry-run", action="store_true", help="print circuits, shots, QPU time and cost; run nothing")
    p.add_argument("--budget-shots", type=int, default=None, help="hard cap on shots submitted by the campaign")
    p.add_argument("--budget-cost", type=float, default=None, help="hard cap on estimated cost")
    p.add_argument("--price-1q", type=float, default=0.000220, help="price per 1-qubit-gate-shot (check contract)")
    p.add_argument("--price-2q", type=float, default=0.000975, help="price per 2-qubit-gate-shot (check contract)")
    p.add_argument("--price-per-job", type=float, default=0.0, help="fixed price per job")
    p.add_argument("--max-jobs-per-minute", type=float, default=10.0)
    p.add_argument("--max-in-flight", type=int, default=4)
    p.add_argument("--poll-interval", type=float, default=None, help="seconds between status polls "
                   "(default 5 for ionq, 0.2 for the emulator)")
    p.add_argument("--detached-gateway", action="store_true",
                   help="start the gateway actor detached (it outlives this driver; stop it with ray.kill)")
    p.add_argument("--url", default=None, help="IonQ API base URL (default $IONQ_API_URL or api.ionq.co/v0.4)")
    p.add_argument("--qpu", default="qpu.aria-2", help="IonQ backend name")
    p.add_argument("--bernoulli-runs", type=int, default=None, help="baseline runs per phase (paper 20, smoke 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the QCBM trial")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a QCBM trial config field, e.g. --set spsa_a=0.3 --set spsa_c=0.15")
    p.add_argument("--emulator-latency", type=float, default=0.2)
    p.add_argument("--emulator-429-prob", type=float, default=0.0)
    p.add_argument("--max-failures", type=int, default=3, help="retries per crashed trial (from its checkpoint)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded local Ray")
    p.add_argument("--address", default=None, help="Ray cluster address (default $RAY_ADDRESS or embedded)")
    return p


def run(args: argparse.Namespace) -> int:
    from sweeps.presets import parse_set

    phases = list(PHASES) if args.phase == "both" else [args.phase]
    trials = campaign_trials(args.preset, phases, args.backend, args.bernoulli_runs, parse_set(args.overrides),
                             args.seed)
    for name in ("max_jobs_per_minute", "max_in_flight"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0")
    plans = print_plan(trials, args)
    if args.dry_run:
        return 0
    from sweeps.driver import resolve_run, validate

    validate(trials)
    storage, name = resolve_run(args.storage, args.name, f"qpu-{args.preset}", args.resume)
    run_dir = join(storage, name)
    use_gateway = args.backend in ("ionq", "emulator")
    if use_gateway and is_uri(run_dir):
        raise ValueError("the QPU gateway ledger needs a POSIX --storage directory (shared by the nodes), not a URI")

    import ray
    from ray import tune

    from sweeps.gateway import GatewayBackendFactory, GatewayConfig, start_gateway

    emulator = None
    started_ray = False
    try:
        if use_gateway and args.backend == "emulator":
            from qgan.ionq.emulator import Emulator, EmulatorConfig

            # A throw-away token shared with the gateway through the environment (never printed).
            os.environ.setdefault("IONQ_API_KEY", "emu-" + secrets.token_hex(16))
            emulator = Emulator(EmulatorConfig(token=os.environ["IONQ_API_KEY"], latency=args.emulator_latency,
                                               rate_limit_prob=args.emulator_429_prob, retry_after=0.5)).start()
            url = emulator.url
            print(f"IonQ API emulator on {url}", flush=True)
        else:
            url = args.url
        if not ray.is_initialized():
            address = args.address or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address)
            else:
                from sweeps.driver import REPO_ROOT

                pythonpath = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH", "")) if p)
                ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False,
                         runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
            started_ray = True
        factory = None
        campaign = f"{name}".replace("/", "-")
        gateway = None
        if use_gateway:
            poll = args.poll_interval if args.poll_interval is not None else (5.0 if args.backend == "ionq" else 0.2)
            per = max(1, int(args.max_jobs_per_minute))  # R jobs per minute -> `per` jobs per 60 * per / R s
            gcfg = GatewayConfig(campaign=campaign, ledger_dir=os.path.join(run_dir, "qpu"), url=url,
                                 backend=args.qpu, max_jobs_per_period=per,
                                 period_s=60.0 * per / args.max_jobs_per_minute, max_in_flight=args.max_in_flight, budget_shots=args.budget_shots,
                                 budget_cost=args.budget_cost, price_1q_gate_shot=args.price_1q,
                                 price_2q_gate_shot=args.price_2q, price_per_job=args.price_per_job,
                                 poll_interval_s=poll)
            gateway = start_gateway(gcfg, detached=args.detached_gateway)
            factory = GatewayBackendFactory(campaign)
        store = Store(run_dir)
        if not (args.resume and store.exists("qpu_campaign.json")):
            store.write_text(json.dumps({"argv": sys.argv[1:], "backend": args.backend, "preset": args.preset,
                                         "phases": phases, "plans": plans,
                                         "trials": [t["_trial_id"] for t in trials]}, indent=2),
                             "qpu_campaign.json")
        trainable = tune.with_resources(
            tune.with_parameters(campaign_trial, run_dir=run_dir, threads=max(1, int(args.cpus_per_trial)),
                                 backend=factory),
            {"cpu": args.cpus_per_trial})
        from sweeps.driver import report, trial_dirname

        if args.resume and tune.Tuner.can_restore(run_dir):
            print(f"resuming {run_dir}", flush=True)
            tuner = tune.Tuner.restore(run_dir, trainable, resume_unfinished=True, resume_errored=True,
                                       restart_errored=False)
        else:
            tuner = tune.Tuner(
                trainable, param_space={"trial": tune.grid_search(trials)},
                tune_config=tune.TuneConfig(reuse_actors=False, trial_dirname_creator=trial_dirname,
                                            trial_name_creator=trial_dirname),
                run_config=tune.RunConfig(name=name, storage_path=storage,
                                          failure_config=tune.FailureConfig(max_failures=args.max_failures),
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=2), verbose=1))
        results = tuner.fit()
        ok = report(run_dir, trials, results)
        if gateway is not None:
            st = ray.get(gateway.status.remote())
            store.write_text(json.dumps(st, indent=2), "qpu", "gateway_status.json")
            print(f"QPU gateway: {st['used_shots']:,} shots committed (budget {st['budget_shots']}), estimated cost "
                  f"{st['used_cost']:,.2f}, jobs {st['jobs']}, restarts {st['stats']['restarts']}")
        return 0 if ok else 1
    finally:
        if started_ray:
            ray.shutdown()
        if emulator is not None:
            emulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qgan.cli_errors import run_cli

    return run_cli("qpu_campaign", lambda: run(args), interrupted="continue with --resume --name <run>")


if __name__ == "__main__":
    sys.exit(main())

"""The cluster definitions parse and run the sweep entry script; local.sh never calls a global `ray stop`."""
from __future__ import annotations

from pathlib import Path

import yaml

CLUSTER = Path(__file__).resolve().parent.parent / "cluster"


def test_aws_launcher_config_has_a_head_and_gpu_workers():
    cfg = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    assert cfg["provider"]["type"] == "aws"
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    gpu = [t for t in types.values() if t["node_config"]["InstanceType"].startswith(("g", "p"))]
    assert gpu and gpu[0]["max_workers"] >= 1
    assert any("pip install" in c and "-e" in c for c in cfg["setup_commands"])


def test_kuberay_manifests_define_a_cluster_and_a_job_running_the_ferrite_sweep():
    rc = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert rc["kind"] == "RayCluster" and job["kind"] == "RayJob"
    assert rc["apiVersion"] == job["apiVersion"] == "ray.io/v1"
    assert "python sweeps/ferrite.py" in job["spec"]["entrypoint"]
    assert "--storage s3://" in job["spec"]["entrypoint"]
    for spec in (rc["spec"], job["spec"]["rayClusterSpec"]):
        workers = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
        assert workers["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["working_dir"] == "/app"


def test_local_cluster_script_only_stops_its_own_processes():
    text = (CLUSTER / "local.sh").read_text()
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any('"$RAY" stop' in line or line.strip().startswith("ray stop") for line in code)
    assert "ray_procs.py\" stop \"$TEMP_DIR\"" in text

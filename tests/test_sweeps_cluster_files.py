"""The cluster definitions parse, validate and run the sweep entry script; local.sh never calls a global `ray stop`.

aws.yaml is checked against the autoscaler JSON schema that ships in the installed Ray wheel (the check `ray up`
makes before it talks to AWS); the KubeRay manifests for what the QPU ledger and object storage need (a shared
ReadWriteMany volume at one path on every pod, one service account with the IRSA annotation).
"""
from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster"
KUBERAY = CLUSTER / "kuberay"


def _aws() -> dict:
    return yaml.safe_load((CLUSTER / "aws.yaml").read_text())


def _ray_schema() -> dict:
    """ray/autoscaler/ray-schema.json from the installed ray package (found without importing ray)."""
    import json

    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.submodule_search_locations, "ray is not installed"
    path = Path(list(spec.submodule_search_locations)[0]) / "autoscaler" / "ray-schema.json"
    assert path.is_file(), f"no autoscaler schema in the ray wheel at {path}"
    return json.loads(path.read_text())


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _one(path: Path, kind: str) -> dict:
    found = [d for d in _docs(path) if d["kind"] == kind]
    assert len(found) == 1, f"{path.name}: expected one {kind}, found {len(found)}"
    return found[0]


def _cluster_specs() -> dict[str, dict]:
    rc = _one(KUBERAY / "raycluster.yaml", "RayCluster")
    job = _one(KUBERAY / "rayjob.yaml", "RayJob")
    return {"raycluster.yaml": rc["spec"], "rayjob.yaml": job["spec"]["rayClusterSpec"]}


def _pod_specs(spec: dict) -> list[tuple[str, dict]]:
    return [("head", spec["headGroupSpec"]["template"]["spec"])] + \
        [(g["groupName"], g["template"]["spec"]) for g in spec["workerGroupSpecs"]]


def _dockerfile_ray_version() -> str:
    m = re.search(r"^FROM rayproject/ray:(\d+\.\d+\.\d+)-py3(\d+)", (CLUSTER / "Dockerfile").read_text(), re.M)
    assert m, "cluster/Dockerfile does not start FROM rayproject/ray:X.Y.Z-py3NN..."
    return m.group(1)


# ---------------------------------------------------------------- AWS (Ray cluster launcher)

def test_aws_launcher_config_has_a_head_and_gpu_workers():
    cfg = _aws()
    assert cfg["provider"]["type"] == "aws"
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    gpu = [t for t in types.values() if t["node_config"]["InstanceType"].startswith(("g", "p"))]
    assert gpu and gpu[0]["max_workers"] >= 1
    assert any("pip install" in c and "-e" in c for c in cfg["setup_commands"])


def test_aws_config_passes_the_autoscaler_schema_shipped_with_ray():
    cfg = _aws()
    jsonschema.validate(cfg, _ray_schema())
    # what `ray up` does with it before bootstrapping the provider: defaults filled in, then validated again
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cfg)))


@pytest.mark.parametrize("break_it", [
    pytest.param(lambda c: c.update(setup_comands=c.pop("setup_commands")), id="misspelt-top-level-key"),
    pytest.param(lambda c: c["available_node_types"]["gpu_worker"].update(max_worker=8), id="misspelt-node-type-key"),
    pytest.param(lambda c: c["docker"].update(run_option=["--gpus all"]), id="misspelt-docker-key"),
    pytest.param(lambda c: c["auth"].update(ssh_usr="ubuntu"), id="misspelt-auth-key"),
    pytest.param(lambda c: c.update(max_workers="8"), id="string-for-integer"),
    pytest.param(lambda c: c["available_node_types"]["head"].update(resources={"CPU": -1}), id="negative-resource"),
    pytest.param(lambda c: c.pop("provider"), id="no-provider"),
])
def test_the_autoscaler_schema_rejects_a_broken_aws_config(break_it):
    cfg = _aws()
    break_it(cfg)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, _ray_schema())


def test_aws_nodes_run_the_pinned_ray_in_a_python3_container():
    """No `latest_dlami` (Ubuntu 18.04, Python < 3.10): nodes run a rayproject/ray container of the Dockerfile's Ray."""
    cfg = _aws()
    version = _dockerfile_ray_version()
    for t in cfg["available_node_types"].values():
        assert t["node_config"]["ImageId"].lower() != "latest_dlami"
    docker = cfg["docker"]
    m = re.fullmatch(r"(?:rayproject/ray|[^:]+/qgan-sweeps):(\d+\.\d+\.\d+)-py3(\d+)(?:-gpu)?", docker["image"])
    assert m, docker["image"]
    assert m.group(1) == version and int(m.group(2)) >= 10
    assert docker["container_name"] and docker["pull_before_run"] is True
    assert "--gpus all" in docker["worker_run_options"]
    assert "--gpus all" not in docker.get("run_options", []) + docker.get("head_run_options", [])  # CPU head
    setup = " ".join(cfg["setup_commands"])
    assert f'"ray[tune,default]=={version}"' in setup and f"== '{version}'" in setup


def test_ray_version_is_the_same_in_the_dockerfile_aws_and_kuberay():
    version = _dockerfile_ray_version()
    assert _one(KUBERAY / "raycluster.yaml", "RayCluster")["spec"]["rayVersion"] == version
    assert _one(KUBERAY / "rayjob.yaml", "RayJob")["spec"]["rayClusterSpec"]["rayVersion"] == version
    assert f"ray[default]=={version}" in (CLUSTER / "aws.yaml").read_text()


# ---------------------------------------------------------------- Kubernetes (KubeRay)

def test_kuberay_manifests_define_a_cluster_and_a_job_running_the_ferrite_sweep():
    rc = _one(KUBERAY / "raycluster.yaml", "RayCluster")
    job = _one(KUBERAY / "rayjob.yaml", "RayJob")
    assert rc["apiVersion"] == job["apiVersion"] == "ray.io/v1"
    assert "python sweeps/ferrite.py" in job["spec"]["entrypoint"]
    assert "--storage s3://" in job["spec"]["entrypoint"]
    for spec in _cluster_specs().values():
        workers = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
        assert workers["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["working_dir"] == "/app"
    # a retry would re-run the entrypoint without --resume, which the sweep refuses: resuming is explicit
    assert job["spec"]["backoffLimit"] == 0


def test_kuberay_pods_share_one_readwritemany_volume_at_one_path_and_one_service_account():
    shared = KUBERAY / "shared.yaml"
    pvc = _one(shared, "PersistentVolumeClaim")
    sa = _one(shared, "ServiceAccount")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    mounts = set()
    for name, spec in _cluster_specs().items():
        for group, pod in _pod_specs(spec):
            where = f"{name} {group}"
            assert pod["serviceAccountName"] == sa["metadata"]["name"], where
            claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                      if "persistentVolumeClaim" in v}
            assert pvc["metadata"]["name"] in claims.values(), where
            vol = next(k for k, v in claims.items() if v == pvc["metadata"]["name"])
            paths = [m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == vol]
            assert len(paths) == 1, where
            mounts.update(paths)
    assert len(mounts) == 1, f"the shared volume must be mounted at the same path everywhere, got {mounts}"


def test_the_docs_pass_the_shared_volume_to_the_qpu_campaign_as_its_storage():
    """The QPU ledger refuses URI storage: the README names the campaign's real storage flag and the mount path."""
    from sweeps.qpu_campaign import build_parser

    flags = {s for a in build_parser()._actions for s in a.option_strings}
    assert "--storage" in flags
    pvc = _one(KUBERAY / "shared.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    spec = _cluster_specs()["raycluster.yaml"]
    pod = spec["headGroupSpec"]["template"]["spec"]
    vol = next(v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == pvc)
    mount = next(m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == vol)
    readme = (CLUSTER / "README.md").read_text()
    assert re.search(rf"sweeps/qpu_campaign\.py [^\n`]*--storage {re.escape(mount)}/", readme)
    assert "--resume" in readme and "kubectl delete rayjob" in readme


def test_local_cluster_script_only_stops_its_own_processes():
    text = (CLUSTER / "local.sh").read_text()
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any('"$RAY" stop' in line or line.strip().startswith("ray stop") for line in code)
    assert "ray_procs.py\" stop \"$TEMP_DIR\"" in text

"""The cluster launch configs in cluster/: Ray's own checks, the shape vidray's cluster config needs,
and a dashboard that never faces the internet."""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import (
    _derive_autoscaling_config_from_ray_cr,
)
from ray.autoscaler._private.kuberay.utils import parse_quantity
from ray.autoscaler._private.util import prepare_config, validate_config

from vidray.config import Config, StageResources, load_config, parse_size

ROOT = Path(__file__).parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHER = ["aws.yaml", "gcp.yaml"]  # `ray up` configs
KUBERAY = ["raycluster.yaml", "rayjob.yaml"]
ALL_FILES = [CLUSTER / n for n in LAUNCHER] + [CLUSTER / "kuberay" / n for n in KUBERAY]

# The shape docs/scaling.md was computed for ("a year of video in under 6 hours").
SHAPE = {"cpu": ({"CPU": 32}, 3), "gpu": ({"CPU": 8, "GPU": 1}, 56)}
MAX_WORKERS = 59
MACHINES = {
    "aws.yaml": (
        "InstanceType",
        {"head": "m6i.2xlarge", "cpu": "c6i.8xlarge", "gpu": "g5.2xlarge"},
    ),
    "gcp.yaml": (
        "machineType",
        {"head": "n2-standard-8", "cpu": "n2-standard-32", "gpu": "g2-standard-8"},
    ),
}
WORKER_GROUP_FIELDS = {"replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"}
KUBERAY_MEMORY = {"headgroup": "32Gi", "cpu": "64Gi", "gpu": "32Gi"}
SECRET = re.compile(
    r"aws_secret_access_key|aws_access_key_id|aws_session_token|google_application_credentials"
    r"|password|AKIA[0-9A-Z]{16}|BEGIN [A-Z ]*PRIVATE KEY",
    re.IGNORECASE,
)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def launcher(name: str) -> dict[str, Any]:
    """A `ray up` config as Ray prepares it before validating (defaults merged in)."""
    return prepare_config(load(CLUSTER / name))


def roles(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The launcher's node types by role: head, cpu (worker without GPU), gpu."""
    types = config["available_node_types"]
    head = config["head_node_type"]
    workers = {k: v for k, v in types.items() if k != head}
    gpu = [v for v in workers.values() if v["resources"].get("GPU", 0) > 0]
    cpu = [v for v in workers.values() if v["resources"].get("GPU", 0) == 0]
    assert len(gpu) == 1 and len(cpu) == 1, sorted(types)
    return {"head": types[head], "cpu": cpu[0], "gpu": gpu[0]}


def ray_start_flags(commands: list[str]) -> dict[str, str]:
    """The flags of the `ray start` in a list of shell commands (`--head` maps to "")."""
    starts = [
        shlex.split(part)
        for command in commands
        for part in command.split(";")
        if part.split()[:2] == ["ray", "start"]
    ]
    assert len(starts) == 1, commands
    flags = (arg.partition("=") for arg in starts[0][2:])
    return {key: value for key, _, value in flags}


def kuberay_spec(name: str) -> dict[str, Any]:
    """The RayCluster spec of a KubeRay manifest (a RayJob carries one in rayClusterSpec)."""
    manifest = load(CLUSTER / "kuberay" / name)
    return manifest["spec"]["rayClusterSpec"] if manifest["kind"] == "RayJob" else manifest["spec"]


def kuberay_autoscaling(name: str) -> dict[str, Any]:
    """The autoscaling config the KubeRay autoscaler derives from the manifest (Ray validates it)."""
    ray_cr = {"metadata": {"name": "vidray", "namespace": "test"}, "spec": kuberay_spec(name)}
    return _derive_autoscaling_config_from_ray_cr(ray_cr)


def pod_templates(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield spec["headGroupSpec"]["template"]
    for group in spec["workerGroupSpecs"]:
        yield group["template"]


def worker_types(source: str) -> dict[str, tuple[dict[str, float], int]]:
    """(resources, max_workers) of each worker type of a launcher config or KubeRay manifest."""
    config = launcher(source) if source in LAUNCHER else kuberay_autoscaling(source)
    types = config["available_node_types"].items()
    head = config["head_node_type"]
    return {k: (v["resources"], v["max_workers"]) for k, v in types if k != head}


def stage_resources(config: Config) -> dict[str, StageResources]:
    pools = config.build.ray
    fields = (f.name for f in dataclasses.fields(pools))
    return {
        name: getattr(pools, name)
        for name in fields
        if isinstance(getattr(pools, name), StageResources)
    }


def walk(data: Any) -> Iterator[str]:
    """Every key and scalar value of parsed YAML, as text."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield str(key)
            yield from walk(value)
    elif isinstance(data, list):
        for item in data:
            yield from walk(item)
    else:
        yield str(data)


@pytest.fixture(scope="module")
def cluster_config() -> Config:
    return load_config(ROOT / "configs" / "cluster.yaml")


# -- `ray up` configs: Ray's own validation ---------------------------------------------------


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_config_passes_rays_validation(name: str) -> None:
    validate_config(launcher(name))  # ray-schema.json plus Ray's cross-field checks


def _unknown_top_level_key(c: dict[str, Any]) -> None:
    c["dashboard_port"] = 8265


def _node_type_without_resources(c: dict[str, Any]) -> None:
    del c["available_node_types"]["gpu_worker"]["resources"]


def _fractional_resource(c: dict[str, Any]) -> None:
    c["available_node_types"]["cpu_worker"]["resources"]["CPU"] = 0.5


def _unknown_head_type(c: dict[str, Any]) -> None:
    c["head_node_type"] = "no_such_type"


def _min_workers_above_global_max(c: dict[str, Any]) -> None:
    c["available_node_types"]["gpu_worker"]["min_workers"] = MAX_WORKERS + 1


@pytest.mark.parametrize("name", LAUNCHER)
@pytest.mark.parametrize(
    "breakage, error, match",
    [
        (_unknown_top_level_key, jsonschema.ValidationError, "'dashboard_port' was unexpected"),
        (_node_type_without_resources, jsonschema.ValidationError, "'resources' is a required"),
        (_fractional_resource, jsonschema.ValidationError, "is not of type 'integer'"),
        (_unknown_head_type, ValueError, "head_node_type"),
        (_min_workers_above_global_max, ValueError, "sum of `min_workers`"),
    ],
)
def test_rays_validation_rejects_broken_variants(
    name: str, breakage: Callable[[dict[str, Any]], None], error: type[Exception], match: str
) -> None:
    config = load(CLUSTER / name)
    breakage(config)
    with pytest.raises(error, match=re.escape(match)):
        validate_config(prepare_config(config))


# -- `ray up` configs: shape ------------------------------------------------------------------


@pytest.mark.parametrize("name", LAUNCHER)
def test_head_runs_no_work(name: str) -> None:
    config = launcher(name)
    assert roles(config)["head"]["resources"] == {"CPU": 0}
    flags = ray_start_flags(config["head_start_ray_commands"])
    assert "--head" in flags and flags.get("--num-cpus") == "0"


@pytest.mark.parametrize("name", LAUNCHER)
def test_dashboard_and_job_api_bound_to_loopback(name: str) -> None:
    flags = ray_start_flags(launcher(name)["head_start_ray_commands"])
    assert flags.get("--dashboard-host") == "127.0.0.1"


@pytest.mark.parametrize("name", LAUNCHER)
def test_worker_types_autoscale_from_zero(name: str) -> None:
    config = launcher(name)
    by_role = roles(config)
    for role, (resources, max_workers) in SHAPE.items():
        node_type = by_role[role]
        assert node_type["resources"] == resources, role
        assert (node_type["min_workers"], node_type["max_workers"]) == (0, max_workers), role
    assert config["max_workers"] == MAX_WORKERS == sum(n for _, n in SHAPE.values())
    assert config["idle_timeout_minutes"] > 0


@pytest.mark.parametrize("name", LAUNCHER)
def test_machine_types(name: str) -> None:
    field, expected = MACHINES[name]
    by_role = roles(launcher(name))
    assert {role: t["node_config"][field] for role, t in by_role.items()} == expected


@pytest.mark.parametrize("name", LAUNCHER)
def test_images_carry_the_installed_ray(name: str) -> None:
    config = launcher(name)
    image = f"rayproject/ray:{ray.__version__}-py311"
    docker = config["docker"]
    assert docker["image"] == image and docker["container_name"]
    assert "head_image" not in docker and "worker_image" not in docker
    by_role = roles(config)
    assert "docker" not in by_role["cpu"]
    assert by_role["gpu"]["docker"]["worker_image"] == f"{image}-gpu"


@pytest.mark.parametrize("name", LAUNCHER)
def test_setup_installs_vidray_as_the_makefile_does(name: str) -> None:
    config = launcher(name)
    assert config["file_mounts"] == {"/home/ray/vidray": "."}
    commands = [shlex.split(c) for c in config["setup_commands"]]
    installs = [c for c in commands if c[:2] == ["pip", "install"]]
    editable = [c[c.index("-e") + 1] for c in installs if "-e" in c]
    assert len(editable) == 1
    path, _, extras = editable[0].partition("[")
    assert path == "/home/ray/vidray"
    assert {"whisperx", "embed"} <= set(extras.rstrip("]").split(","))
    makefile = (ROOT / "Makefile").read_text()
    whisperx = re.search(r"--no-deps (whisperx==\S+)", makefile)
    assert whisperx and ["--no-deps", whisperx.group(1)] in [c[-2:] for c in installs]
    torch = (ROOT / "constraints.txt").read_text().split("torch==")[1].split()[0]
    assert f"torch=={torch}" in [arg for c in commands for arg in c]  # CPU nodes, pinned as here
    assert config["setup_commands"][-1].startswith('python -c "import vidray, whisperx')


def test_aws_inbound_rules_admit_only_ssh_from_one_cidr() -> None:
    config = launcher("aws.yaml")
    rules = config["provider"]["security_group"]["IpPermissions"]
    assert rules
    for rule in rules:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
        cidrs = [r["CidrIp"] for r in rule["IpRanges"]]
        assert cidrs and "0.0.0.0/0" not in cidrs
        assert not rule.get("Ipv6Ranges") and not rule.get("PrefixListIds")
    for node_type in config["available_node_types"].values():
        assert "SecurityGroupIds" not in node_type["node_config"]  # the group above is used


def security_group_ray_sets_up(config: dict[str, Any], precreated: bool) -> dict[str, Any]:
    """The group Ray's own AWS bootstrap leaves for the config, on moto's in-process EC2;
    `precreated`: made first with its rules, as the comment in cluster/aws.yaml says."""
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    from ray.autoscaler._private.aws.config import _configure_security_group

    ours = config["provider"]["security_group"]
    with moto.mock_aws():
        ec2 = boto3.client("ec2", region_name=config["provider"]["region"])
        subnet = ec2.describe_subnets()["Subnets"][0]
        for node_type in config["available_node_types"].values():
            node_type["node_config"]["SubnetIds"] = [subnet["SubnetId"]]  # as `ray up` picks
        if precreated:
            made = ec2.create_security_group(
                GroupName=ours["GroupName"], Description="vidray", VpcId=subnet["VpcId"]
            )
            within = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": made["GroupId"]}]}
            ec2.authorize_security_group_ingress(
                GroupId=made["GroupId"], IpPermissions=[*ours["IpPermissions"], within]
            )
        configured = _configure_security_group(config)
        ids = {
            group
            for node_type in configured["available_node_types"].values()
            for group in node_type["node_config"]["SecurityGroupIds"]
        }
        assert len(ids) == 1, ids  # one group for head and workers
        (group,) = ec2.describe_security_groups(GroupIds=sorted(ids))["SecurityGroups"]
    return group


@pytest.mark.parametrize("precreated", [True, False], ids=["precreated", "made-by-ray"])
def test_aws_security_group_that_ray_sets_up(
    precreated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made as cluster/aws.yaml says, the group admits SSH from the set CIDR only; one Ray makes
    itself also admits SSH from anywhere (why the comment asks for the first). Neither admits
    8265 or 10001, and all other traffic comes only from the group's own nodes."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    config = launcher("aws.yaml")
    group = security_group_ray_sets_up(config, precreated)
    assert group["GroupName"] == config["provider"]["security_group"]["GroupName"]
    open_to: dict[str, set[tuple[int, int]]] = {}
    for rule in group["IpPermissions"]:
        if rule["IpProtocol"] == "-1":
            assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [group["GroupId"]]
        for cidr in rule["IpRanges"]:
            ports = (rule.get("FromPort", 0), rule.get("ToPort", 65535))
            open_to.setdefault(cidr["CidrIp"], set()).add(ports)
    assert all(ports == {(22, 22)} for ports in open_to.values())
    ours = {
        r["CidrIp"] for r in config["provider"]["security_group"]["IpPermissions"][0]["IpRanges"]
    }
    assert set(open_to) == (ours if precreated else ours | {"0.0.0.0/0"})


# -- every config can host vidray's cluster pipeline ------------------------------------------


@pytest.mark.parametrize("source", [*LAUNCHER, "raycluster.yaml"])
def test_every_stage_actor_fits_a_worker_type(source: str, cluster_config: Config) -> None:
    types = worker_types(source)
    for stage, need in stage_resources(cluster_config).items():
        hosts = [
            name
            for name, (res, _) in types.items()
            if res.get("CPU", 0) >= need.num_cpus and res.get("GPU", 0) >= need.num_gpus
        ]
        assert hosts, f"no worker type of {source} can host a {stage} actor: {need}"


@pytest.mark.parametrize("source", [*LAUNCHER, "raycluster.yaml"])
def test_stage_pools_at_full_size_fit_the_cluster_at_full_size(
    source: str, cluster_config: Config
) -> None:
    types = worker_types(source).values()
    pools = stage_resources(cluster_config).values()
    for resource, per_actor in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        needed = sum(p.max_actors * getattr(p, per_actor) for p in pools)
        available = sum(res.get(resource, 0) * n for res, n in types)
        assert needed <= available, resource


@pytest.mark.parametrize("source", [*LAUNCHER, "raycluster.yaml"])
def test_cluster_at_full_size_is_what_the_build_plans_for(
    source: str, cluster_config: Config
) -> None:
    """build.ray.max_cpus / max_gpus in configs/cluster.yaml describe these clusters at their
    largest (the head advertises nothing)."""
    types = worker_types(source).values()
    pools = cluster_config.build.ray
    assert pools.max_cpus == sum(res.get("CPU", 0) * n for res, n in types)
    assert pools.max_gpus == sum(res.get("GPU", 0) * n for res, n in types)


@pytest.mark.parametrize("source", [*LAUNCHER, "raycluster.yaml"])
def test_training_workers_fit_the_gpu_workers(source: str, cluster_config: Config) -> None:
    train = cluster_config.train
    assert train.use_gpu
    gpu_types = [(res, n) for res, n in worker_types(source).values() if res.get("GPU", 0) >= 1]
    assert any(res["CPU"] >= train.cpus_per_worker for res, _ in gpu_types)
    assert train.num_workers <= sum(res["GPU"] * n for res, n in gpu_types)


@pytest.mark.parametrize("name", LAUNCHER)
def test_cpu_worker_disk_holds_the_fetch_scratch(name: str, cluster_config: Config) -> None:
    node_config = roles(launcher(name))["cpu"]["node_config"]
    if "BlockDeviceMappings" in node_config:
        gib = node_config["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
    else:
        gib = node_config["disks"][0]["initializeParams"]["diskSizeGb"]
    assert gib << 30 >= 2 * parse_size(cluster_config.build.fetch.scratch_budget)


# -- KubeRay manifests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kind", [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")]
)
def test_kuberay_manifest_kind(name: str, kind: str) -> None:
    manifest = load(CLUSTER / "kuberay" / name)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", kind)
    assert manifest["metadata"]["name"]


@pytest.mark.parametrize("name", KUBERAY)
def test_kuberay_required_fields(name: str) -> None:
    spec = kuberay_spec(name)
    assert spec["rayVersion"] == ray.__version__
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert sorted(groups) == ["cpu", "gpu"]
    for group in groups.values():
        assert set(group) >= WORKER_GROUP_FIELDS, group["groupName"]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for group in [head, *groups.values()]:
        # rayStartParams is a map of strings in the CRD: `num-cpus: 0` would be refused
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
    for template in pod_templates(spec):
        container = template["spec"]["containers"][0]
        assert container["image"] and container["resources"]["limits"]
        assert ray.__version__ in container["image"]
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(gpu_limits["nvidia.com/gpu"]) == 1


@pytest.mark.parametrize("name", KUBERAY)
def test_kuberay_shape_as_rays_autoscaler_reads_it(name: str) -> None:
    config = kuberay_autoscaling(name)  # raises if Ray's schema refuses it
    types = config["available_node_types"]
    assert sorted(types) == ["cpu", "gpu", "headgroup"]
    for group, memory in KUBERAY_MEMORY.items():
        assert types[group]["resources"].pop("memory") == parse_quantity(memory), group
    assert types["headgroup"]["resources"] == {"CPU": 0}
    for group, (resources, max_workers) in SHAPE.items():
        assert types[group]["resources"] == resources, group
        assert (types[group]["min_workers"], types[group]["max_workers"]) == (0, max_workers)
    assert config["max_workers"] == MAX_WORKERS
    spec = kuberay_spec(name)
    assert spec["enableInTreeAutoscaling"] is True
    assert config["idle_timeout_minutes"] == launcher("aws.yaml")["idle_timeout_minutes"]


@pytest.mark.parametrize("name", KUBERAY)
def test_kuberay_head_service_stays_inside_the_cluster(name: str) -> None:
    head = kuberay_spec(name)["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert not head.get("enableIngress", False)
    assert head.get("headService", {}).get("spec", {}).get("type", "ClusterIP") == "ClusterIP"


@pytest.mark.parametrize("name", KUBERAY)
def test_kuberay_pods_get_credentials_from_a_service_account(name: str) -> None:
    for template in pod_templates(kuberay_spec(name)):
        assert template["spec"]["serviceAccountName"]
        for container in template["spec"]["containers"]:
            assert not container.get("envFrom")
            assert not any(SECRET.search(e["name"]) for e in container.get("env", []))


def test_rayjob_builds_the_dataset_and_cleans_up() -> None:
    job = load(CLUSTER / "kuberay" / "rayjob.yaml")["spec"]
    argv = shlex.split(job["entrypoint"])
    assert argv[:4] == ["python", "jobs/build_dataset.py", "--config", "configs/cluster.yaml"]
    assert (ROOT / argv[1]).is_file() and (ROOT / argv[3]).is_file()
    assert argv[argv.index("--output") + 1].startswith("s3://")
    assert job["shutdownAfterJobFinishes"] is True
    assert isinstance(job["ttlSecondsAfterFinished"], int) and job["ttlSecondsAfterFinished"] >= 0
    assert job["rayClusterSpec"] == kuberay_spec("raycluster.yaml")  # one shape, kept in step


# -- all files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_no_credentials_in_cluster_files(path: Path) -> None:
    leaked = [text for text in walk(load(path)) if SECRET.search(text)]
    assert not leaked

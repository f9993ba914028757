"""`headshot batch --address` on a Ray cluster started apart from the batch, as on real machines.

test_batch_ray.py drives Ray's in-process `cluster_utils.Cluster`; here every node is its own
`ray start --block` process, as an operator starts them, and the batch is the real command in
its own process joining by address. The nodes use token authentication (Ray 2.60 turns it on
for `ray start --head` whenever ~/.ray holds a token) with the test's own token, so nothing
depends on ~/.ray.

One cluster for the module: a head and a second node on the same filesystem (the positive
control of the shared-outputs probe: the batch delivers across both), joined by HOST:PORT, by
`auto` and by Ray Client's ray://; a batch without --address beside it starts a Ray of its own;
then a third node started in its own mount namespace where the outputs folder is a private
tmpfs: a node of a second machine that does not mount the shared storage. The batch must refuse
to start, naming the folder, and leave the outputs exactly as they were.

Each node runs in its own process group with its own temp dir: the teardown kills exactly
those groups (`ray stop` would stop every Ray on the machine, other tests' too).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.fault_support import snapshot
from tests.generate_support import subprocess_env
from tests.service_support import free_port, missing_component

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

PHOTOS = ["hopper_01_original", "hopper_02_mirror", "hopper_03_crop_tight", "hopper_04_rotate_left"]
HEAD_RESOURCE = "headshot_test_head"  # custom resources only this cluster's nodes offer
SECOND_RESOURCE = "headshot_test_second"
START_TIMEOUT_S = 90
_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # Linux; not looked up in the child


def _die_with_parent() -> None:
    """A node's `ray start` is SIGKILLed if this test process dies without its teardown (then
    Ray's reaper ends the node's GCS, raylet and workers)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class RayCluster:
    """Nodes started by `ray start --block`, each a process group of its own."""

    root: Path
    environment: dict[str, str]
    address: str = ""
    client_address: str = ""  # Ray Client's, ray://HOST:PORT
    nodes: list[subprocess.Popen] = field(default_factory=list)

    def start_node(self, *options: str, name: str, wrapper: tuple[str, ...] = ()) -> subprocess.Popen:
        temp_dir = self.root / name
        temp_dir.mkdir()
        command = [
            *wrapper, sys.executable, "-m", "ray.scripts.scripts", "start", "--block",
            "--disable-usage-stats", f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1",
            f"--dashboard-agent-listen-port={free_port()}", "--include-log-monitor=false",
            f"--object-store-memory={80 * 2**20}", *options,
        ]  # fmt: skip
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 (the node outlives this call)
        node = subprocess.Popen(
            command, env=self.environment, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        log.close()
        self.nodes.append(node)
        return node

    def start_head(self, num_cpus: int) -> None:
        port, client_port = free_port(), free_port()
        self.start_node(
            "--head", f"--port={port}", f"--num-cpus={num_cpus}", "--include-dashboard=false",
            f"--ray-client-server-port={client_port}", f"--dashboard-port={free_port()}",
            f"--resources={json.dumps({HEAD_RESOURCE: 1})}", name="head",
        )  # fmt: skip
        self.address, self.client_address = f"127.0.0.1:{port}", f"ray://127.0.0.1:{client_port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # its GCS answers: other nodes can join (their drivers wait for them)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline and self.nodes[-1].poll() is None, self.logs()
                time.sleep(0.2)

    def wait_for_nodes(self, count: int) -> None:
        """Until the cluster has `count` live nodes (a node's `ray start` returns before it has
        registered), by a driver of its own."""
        code = (
            "import sys, time, ray\n"
            "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
            "deadline = time.monotonic() + float(sys.argv[3])\n"
            "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]):\n"
            "    assert time.monotonic() < deadline, ray.nodes()\n"
            "    time.sleep(0.2)\n"
        )
        for node in self.nodes:
            assert node.poll() is None, f"a Ray node exited: {self.logs()}"
        done = subprocess.run(
            [sys.executable, "-c", code, self.address, str(count), str(START_TIMEOUT_S)],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S + 30,
        )
        assert done.returncode == 0, done.stderr[-3000:] + self.logs()

    def stop_node(self, node: subprocess.Popen) -> None:
        try:
            os.killpg(node.pid, signal.SIGKILL)  # the node's raylet, agents and workers
        except ProcessLookupError:
            pass
        node.wait(timeout=30)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.stop_node(node)
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return "".join(
            f"\n--- {p.name}\n" + p.read_text(errors="replace")[-2000:] for p in self.root.glob("*.log")
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and a second node on this machine's filesystem, 1 CPU and a custom resource each."""
    # A short root: Ray's socket paths under it must stay within the 107 bytes of a Unix socket.
    root = Path(tempfile.mkdtemp(prefix="hs-ray-", dir="/tmp"))
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    environment = {
        key: value
        for key, value in subprocess_env().items()
        if not key.startswith(("RAY_", "HEADSHOT_FAULT"))
    }
    environment.update(
        HEADSHOT_CACHE=str(tmp_path_factory.mktemp("ray-cache")),
        HF_HUB_OFFLINE="1",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
    )
    made = RayCluster(root, environment)
    try:
        made.start_head(num_cpus=1)
        second = json.dumps({SECOND_RESOURCE: 1})
        made.start_node(f"--address={made.address}", "--num-cpus=1", f"--resources={second}", name="second")
        made.wait_for_nodes(2)
        yield made
    finally:
        made.stop()


def _batch_file(folder: Path, model: Path, photos: Path) -> Path:
    """One subject, the fewest steps every stage allows; prepare on the head, the stages after it
    on the second node (the outputs folder carries the dataset across; one worker loads torch)."""
    batch = {
        "base_model": str(model),
        "prepare": {"workers": 1, "min_photos": 3},
        "finetune": {
            "steps": 2, "rank": 4, "lr": 1e-3, "prior_preservation": False, "checkpoint_steps": 0,
            "validation_steps": 0, "validation_seeds": [], "select": "last", "tensorboard": False,
        },
        "generate": {
            "templates": ["studio-grey"], "seeds_per_template": 1, "steps": 2, "batch_size": 1,
            "ranking": {"top_k": 1, "require_face": False, "max_relative_distance": None, "audit": False},
        },
        "audit": {"thumbnail": 64},
        "resources": {
            "prepare": {"custom": {HEAD_RESOURCE: 1}}, "finetune": {"custom": {SECOND_RESOURCE: 1}},
            "generate": {"custom": {SECOND_RESOURCE: 1}}, "audit": {"custom": {SECOND_RESOURCE: 1}},
        },
        "subjects": [{"name": "ada", "photos": str(photos)}],
    }  # fmt: skip
    path = folder / "batch.yaml"
    path.write_text(yaml.safe_dump(batch))
    return path


def _batch(cluster: RayCluster, *args, **environment) -> subprocess.CompletedProcess:
    """`headshot batch ARGS` as its own process, with the cluster's token."""
    return subprocess.run(
        [sys.executable, "-m", "headshot", "batch", *map(str, args)],
        env={**cluster.environment, **environment},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def delivered(cluster, tiny_sd15, sample_selfies, tmp_path_factory):
    """The batch run once on the two-node cluster, joined by HOST:PORT."""
    folder = tmp_path_factory.mktemp("cluster-batch")
    photos = folder / "photos"
    photos.mkdir()
    for pick in PHOTOS:
        shutil.copy(sample_selfies / f"{pick}.jpg", photos)
    batch_file = _batch_file(folder, tiny_sd15, photos)
    outputs = folder / "outputs"
    result = _batch(cluster, batch_file, "--address", cluster.address, "--outputs", outputs)
    return result, batch_file, outputs


def _record(outputs: Path) -> dict:
    return json.loads((outputs / "batch.json").read_text())


def test_batch_joins_a_cluster_started_apart_and_delivers_across_its_nodes(delivered, cluster, run_cli):
    result, _, outputs = delivered
    assert result.returncode == 0, result.stderr[-3000:] + cluster.logs()
    engine = _record(outputs)["engine"]
    assert engine["address"] == cluster.address
    # The cluster's resources, not a local Ray's: both nodes' CPUs and custom resources.
    assert engine["nodes"] == 2 and engine["hosts"] == 1
    wanted = {"CPU": 2, HEAD_RESOURCE: 1, SECOND_RESOURCE: 1}
    assert {key: engine["resources"].get(key) for key in wanted} == wanted
    subject = _record(outputs)["subjects"][0]
    assert subject["state"] == "delivered"
    stages = subject["stages"]
    assert {stage["state"] for stage in stages.values()} == {"done"}
    assert stages["prepare"]["node"] != stages["finetune"]["node"]
    assert stages["finetune"]["node"] == stages["generate"]["node"] == stages["audit"]["node"]
    delivered_images = sorted((outputs / "ada" / "headshots").glob("*.jpg"))
    assert delivered_images
    verify = run_cli(
        "verify", "--require-ai", "--trust-anchors", outputs / "keys" / "dev-ca.pem", *delivered_images
    )
    assert verify.code == 0, verify.out + verify.err


def test_auto_where_RAY_ADDRESS_names_the_cluster_and_a_ray_client_address_join_it(delivered, cluster):
    _, batch_file, outputs = delivered
    before = snapshot(outputs / "ada")
    for address, environment in (("auto", {"RAY_ADDRESS": cluster.address}), (cluster.client_address, {})):
        result = _batch(cluster, batch_file, "--address", address, "--outputs", outputs, **environment)
        assert result.returncode == 0, f"--address {address}: " + result.stderr[-3000:]
        record = _record(outputs)
        assert record["engine"]["address"] == address
        assert record["engine"]["resources"].get(HEAD_RESOURCE) == 1 and record["engine"]["nodes"] == 2
        assert {stage["state"] for stage in record["subjects"][0]["stages"].values()} == {"skipped"}
    assert snapshot(outputs / "ada") == before


def test_no_address_starts_a_local_ray_even_where_RAY_ADDRESS_names_a_cluster(delivered, cluster):
    """Without --address the batch runs on a Ray of its own (as documented), not on whatever
    cluster RAY_ADDRESS or this machine's last `ray start` names."""
    _, batch_file, outputs = delivered
    settings = yaml.safe_load(batch_file.read_text())
    del settings["resources"]  # the cluster's custom resources; not part of the stages' keys
    local = batch_file.with_name("local.yaml")
    local.write_text(yaml.safe_dump(settings))
    result = _batch(cluster, local, "--outputs", outputs, RAY_ADDRESS=cluster.address)
    assert result.returncode == 0, result.stderr[-3000:]
    engine = _record(outputs)["engine"]
    assert engine["address"] == "local" and engine["nodes"] == 1 and HEAD_RESOURCE not in engine["resources"]
    assert {stage["state"] for stage in _record(outputs)["subjects"][0]["stages"].values()} == {"skipped"}


def _private_outputs_wrapper(outputs: Path) -> tuple[str, ...]:
    """A node in its own mount namespace where `outputs` is an empty tmpfs: a machine that does
    not mount the shared storage. Fails (in CI) or skips (elsewhere) where that is not permitted."""
    mount = ("unshare", "--mount", "--propagation", "private", "sh", "-c")
    script = 'mount -t tmpfs -o size=16m headshot-unshared "$0" && exec "$@"'
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        missing_component("no unshare/nsenter here (util-linux) to start a node with its own mounts")
    probe = subprocess.run([*mount, script, str(outputs), "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        missing_component(
            f"cannot start a node with a private mount namespace here (unshare --mount and a tmpfs "
            f"mount need root or CAP_SYS_ADMIN): {probe.stderr.strip()}"
        )
    return (*mount, script, str(outputs))


def test_an_outputs_folder_one_node_does_not_share_is_refused_and_left_as_it_was(delivered, cluster):
    _, batch_file, outputs = delivered
    wrapper = _private_outputs_wrapper(outputs)
    before = snapshot(outputs)
    unshared = cluster.start_node(
        f"--address={cluster.address}", "--num-cpus=1", name="unshared", wrapper=wrapper
    )
    try:
        cluster.wait_for_nodes(3)
        result = _batch(cluster, batch_file, "--address", cluster.address, "--outputs", outputs)
        # What the unshared node sees there: its own empty folder, the probe's files cleaned too.
        seen_there = subprocess.run(
            ["nsenter", f"--mount=/proc/{unshared.pid}/ns/mnt", "find", str(outputs), "-mindepth", "1"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
    finally:
        cluster.stop_node(unshared)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    refusals = [line for line in result.stderr.splitlines() if "not shared between the nodes" in line]
    assert len(refusals) == 1 and refusals[0].startswith(f"error: {outputs}: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert snapshot(outputs) == before and seen_there == []  # nothing written, nothing lost

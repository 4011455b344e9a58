"""A real single-node Kubernetes cluster for the stack: containerd + runc + bridge CNI, etcd, and
kube-apiserver, kube-controller-manager, kube-scheduler and kubelet built from ``k8s.io/kubernetes``.

Opt-in (``mlrepo stack up --only kubernetes``; the tests that run pods start it). Needs root (or
password-less sudo is *not* enough: containerd and the kubelet must run as root) and Debian's
``containerd runc containernetworking-plugins etcd-server iptables conntrack socat``, installed
with apt when missing.

* Binaries: the wrapper module in ``kubernetes_build/`` (``require k8s.io/kubernetes`` plus a
  ``replace`` of every staging module by its published ``v0.x`` release) is built once with
  ``CGO_ENABLED=0 go build -trimpath``; the four binaries are cached under
  ``<cache>/kubernetes/<version>-<go version>-<go.mod hash>/``.
* State: everything under ``<state>/kubernetes`` (certificates, kubeconfigs, etcd data,
  containerd root/state/socket, CNI configuration and IPAM, kubelet root, pod logs). One cluster
  per machine: the bridge ``cni0`` (10.88.0.0/16, the host is 10.88.0.1), the kubelet's cgroups
  (``kubepods``) and the network namespaces under ``/run/netns`` are machine-wide.
* The node's IP is the bridge gateway 10.88.0.1; the stack creates the bridge before the kubelet
  starts. lakeFS stays on 127.0.0.1; a ``socat`` forwarder makes it reachable from pods at
  ``http://10.88.0.1:<lakeFS port>`` (:func:`lakefs_endpoint_in_pod`).
* Bootstrap: the namespace ``default`` gets the Secret ``mlrepo-lakefs`` (keys ``access_key_id``
  and ``secret_access_key``, the stack's lakeFS credentials) that ``LakeFSPodOperator`` refers to
  with ``secretKeyRef``.
* ``down`` kills the pods' processes (the ``kubepods`` cgroups), stops every process, unmounts
  what containerd and the kubelet mounted under the state directory, removes the pods' network
  namespaces and the bridge, and restores the kernel settings the kubelet changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from airflow_mlrepo.exceptions import StackError
from mlrepo_devstack.stack import debian
from mlrepo_devstack.stack.health import port_is_open, unix_socket_accepts, wait_until
from mlrepo_devstack.stack.kubernetes_pki import ensure_pki, write_kubeconfig
from mlrepo_devstack.stack.lakefs import GO_CANDIDATES, go_module_cache
from mlrepo_devstack.stack.processes import (
    is_alive,
    last_lines,
    log_tail,
    read_pid_file,
    run_logged,
    start_detached,
    stop_process,
)
from mlrepo_devstack.stack.state import LOCALHOST
from mlrepo_devstack.stack.status import KUBERNETES, ComponentStatus

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from mlrepo_devstack.stack.state import StackSettings

log = logging.getLogger(__name__)

KUBERNETES_VERSION = "v1.34.4"
BINARIES: tuple[str, ...] = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
DEBIAN_PACKAGES: tuple[str, ...] = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "etcd-server",
    "iptables",
    "conntrack",
    "socat",
    "ebtables",
    "ethtool",
    "kmod",
    "iproute2",
)
#: Executables whose absence means the Debian packages above are missing.
REQUIRED_EXECUTABLES: tuple[str, ...] = ("containerd", "ctr", "runc", "etcd", "socat", "iptables", "ip")
CNI_BIN_DIR = Path("/usr/lib/cni")
BRIDGE = "cni0"
POD_SUBNET = "10.88.0.0/16"
NODE_IP = "10.88.0.1"
SERVICE_SUBNET = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
NODE_NAME = "mlrepo-node"
NAMESPACE = "default"
#: Namespaces that get the lakeFS Secret (the example DAGs run their pods in ``ml``).
POD_NAMESPACES: tuple[str, ...] = (NAMESPACE, "ml")
LAKEFS_SECRET_NAME = "mlrepo-lakefs"
PAUSE_IMAGE = "mlrepo.local/pause:3.10"
BUILD_TIMEOUT = 3600.0
START_TIMEOUT = 120.0
#: Kernel settings the kubelet changes at start; ``down`` puts the values found before back.
KUBELET_SYSCTLS: tuple[str, ...] = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops")
#: Processes in stop order (reverse of start order).
SERVICES: tuple[str, ...] = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "lakefs-pod-proxy",
)


@dataclass(frozen=True)
class Ports:
    """TCP ports of the cluster's servers, derived from ``MLREPO_KUBERNETES_PORT`` (apiserver, 6443)."""

    apiserver: int

    @property
    def etcd_client(self) -> int:
        return self.apiserver + 10

    @property
    def etcd_peer(self) -> int:
        return self.apiserver + 11

    @property
    def kubelet(self) -> int:
        return self.apiserver + 20

    @property
    def kubelet_healthz(self) -> int:
        return self.apiserver + 21

    @property
    def controller_manager(self) -> int:
        return self.apiserver + 30

    @property
    def scheduler(self) -> int:
        return self.apiserver + 31


def ports() -> Ports:
    raw = os.environ.get("MLREPO_KUBERNETES_PORT", "").strip()
    return Ports(int(raw) if raw else 6443)


# ------------------------------------------------------------------------------------ paths


def base_dir(settings: StackSettings) -> Path:
    return settings.component_dir(KUBERNETES)


def kubeconfig_path(settings: StackSettings) -> Path:
    """The admin kubeconfig (``O=system:masters``) that users, tests and Airflow use."""
    return base_dir(settings) / "kubeconfig" / "admin.conf"


def containerd_socket(settings: StackSettings) -> Path:
    return base_dir(settings) / "containerd" / "containerd.sock"


def apiserver_url() -> str:
    return f"https://{LOCALHOST}:{ports().apiserver}"


def lakefs_endpoint_in_pod(settings: StackSettings) -> str:
    """Where pods reach the stack's lakeFS (the socat forwarder on the bridge gateway)."""
    return f"http://{NODE_IP}:{settings.lakefs_port}"


def airflow_connection(settings: StackSettings) -> dict[str, Any]:
    """The Airflow connection (type ``kubernetes``) for this cluster: admin kubeconfig, namespace
    ``default``, the XCom sidecar image built here (KubernetesPodOperator's default is not local)."""
    from mlrepo_devstack.stack.kubernetes_images import BASE_IMAGE

    return {
        "conn_type": "kubernetes",
        "extra": {
            "kube_config_path": str(kubeconfig_path(settings)),
            "namespace": NAMESPACE,
            "in_cluster": False,
            "xcom_sidecar_container_image": BASE_IMAGE,
        },
    }


def _pki(settings: StackSettings) -> Path:
    return base_dir(settings) / "pki"


def _pid(settings: StackSettings, service: str) -> Path:
    return settings.pid_path(f"k8s-{service}")


def _log(settings: StackSettings, service: str) -> Path:
    return settings.log_path(f"k8s-{service}")


# --------------------------------------------------------------------------------- binaries


def _module_file(name: str) -> bytes:
    return importlib.resources.files("mlrepo_devstack.stack").joinpath("kubernetes_build").joinpath(name).read_bytes()


def find_go() -> str:
    found = shutil.which("go")
    if found:
        return found
    for candidate in GO_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise StackError(f"building Kubernetes {KUBERNETES_VERSION} needs the Go toolchain on PATH (https://go.dev/dl/)")


def go_version(go: str) -> str:
    completed = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=False)
    if completed.returncode != 0 or not completed.stdout.strip():
        raise StackError(f"`{go} env GOVERSION` failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


def binaries_dir(settings: StackSettings, go: str) -> Path:
    """``<cache>/kubernetes/<k8s version>-<go version>-<hash of the wrapper go.mod>``."""
    module_hash = hashlib.sha256(_module_file("go.mod")).hexdigest()[:12]
    return settings.cache_dir / "kubernetes" / f"{KUBERNETES_VERSION}-{go_version(go)}-{module_hash}"


def _have_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in BINARIES)


def ensure_binaries(settings: StackSettings) -> Path:
    """The directory of the four cached binaries, building them when they are missing (10-25 min)."""
    go = find_go()
    target = binaries_dir(settings, go)
    if _have_binaries(target):
        return target
    build_log = settings.log_path("k8s-build")
    log.info("building Kubernetes %s from its Go module (10-25 minutes; log: %s)", KUBERNETES_VERSION, build_log)
    version = KUBERNETES_VERSION
    major, minor = version.lstrip("v").split(".")[:2]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={version}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            f"-X k8s.io/client-go/pkg/version.gitVersion={version}",
        ]
    )
    env = {**os.environ, "GOMODCACHE": str(go_module_cache(settings)), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    started = time.monotonic()
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="mlrepo-k8s-build-") as work_dir:
        for name in ("go.mod", "go.sum"):
            Path(work_dir, name).write_bytes(_module_file(name))
        completed = run_logged(
            [
                go,
                "build",
                "-trimpath",
                "-ldflags",
                ldflags,
                "-o",
                f"{partial}/",
                *(f"k8s.io/kubernetes/cmd/{name}" for name in BINARIES),
            ],
            log_path=build_log,
            env=env,
            cwd=Path(work_dir),
            timeout=BUILD_TIMEOUT,
        )
    if completed.returncode != 0 or not _have_binaries(partial):
        shutil.rmtree(partial, ignore_errors=True)
        raise StackError(
            f"go build of Kubernetes {KUBERNETES_VERSION} failed (exit {completed.returncode}); see {build_log}:\n"
            f"{last_lines(completed.stderr or completed.stdout)}"
        )
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    log.info("built Kubernetes %s in %.0fs: %s", KUBERNETES_VERSION, time.monotonic() - started, target)
    return target


# ---------------------------------------------------------------------------- host checks


def _check_host(settings: StackSettings) -> None:
    if not debian.is_root():
        raise StackError("the kubernetes component runs containerd and the kubelet, which need root")
    if platform.system() != "Linux":
        raise StackError("the kubernetes component needs Linux")
    missing = [name for name in REQUIRED_EXECUTABLES if shutil.which(name) is None]
    if missing or not (CNI_BIN_DIR / "bridge").is_file():
        debian.install_packages(["--no-install-recommends", *DEBIAN_PACKAGES], log_path=settings.log_path("k8s-apt"))


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and completed.returncode != 0:
        raise StackError(f"`{' '.join(argv)}` failed (exit {completed.returncode}): {completed.stderr.strip()}")
    return completed


def _ensure_bridge() -> None:
    """The bridge the CNI plugin attaches pods to, with the node's address (the kubelet binds to it)."""
    if _run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addresses = _run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE]).stdout
    if f" {NODE_IP}/" not in addresses:
        _run(["ip", "addr", "add", f"{NODE_IP}/16", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _remember_sysctls(settings: StackSettings) -> None:
    saved = base_dir(settings) / "sysctls.json"
    if saved.exists():
        return  # from the first start: the kubelet may have changed them since
    saved.write_text(json.dumps({name: _read_sysctl(name) for name in KUBELET_SYSCTLS}), encoding="utf-8")


def _restore_sysctls(settings: StackSettings) -> None:
    saved = base_dir(settings) / "sysctls.json"
    try:
        values: dict[str, str | None] = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for name, value in values.items():
        if value is not None and _read_sysctl(name) != value:
            try:
                Path("/proc/sys", *name.split(".")).write_text(value, encoding="utf-8")
            except OSError as err:
                log.warning("could not restore %s=%s: %s", name, value, err)
    saved.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- configuration


def _containerd_config(settings: StackSettings) -> Path:
    root = base_dir(settings) / "containerd"
    cni_conf = base_dir(settings) / "cni" / "net.d"
    config = f"""version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{containerd_socket(settings)}"

[ttrpc]
  address = "{root}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
"""
    path = root / "config.toml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(config, encoding="utf-8")
    cni_conf.mkdir(parents=True, exist_ok=True)
    network = {
        "cniVersion": "1.0.0",
        "name": "mlrepo",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(base_dir(settings) / "cni" / "ipam"),
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (cni_conf / "10-mlrepo.conflist").write_text(json.dumps(network, indent=2), encoding="utf-8")
    return path


def _kubelet_config(settings: StackSettings) -> Path:
    pki = _pki(settings)
    socket = f"unix://{containerd_socket(settings)}"
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": ports().kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": LOCALHOST,
        "healthzPort": ports().kubelet_healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": socket,
        "imageServiceEndpoint": socket,
        # Imported images cannot be pulled back (no registry): never garbage-collect them, never evict.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "podLogsDir": str(base_dir(settings) / "pod-logs"),
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        "maxPods": 60,
        "staticPodPath": "",
        "shutdownGracePeriod": "0s",
    }
    path = base_dir(settings) / "kubelet-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


#: What the API server's audit log keeps: every pod written, with its spec as sent (so a secret scan of
#: the stack's logs covers each pod spec the operators sent), and of Secrets and ConfigMaps only who
#: touched which one, never their data.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets", "configmaps"]}]},
        {
            "level": "Request",
            "verbs": ["create", "update", "patch"],
            "resources": [{"group": "", "resources": ["pods"]}],
        },
        {"level": "None"},
    ],
}
AUDIT_LOG_NAME = "k8s-audit"


def _audit_policy(settings: StackSettings) -> Path:
    path = base_dir(settings) / "audit-policy.yaml"
    path.write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False), encoding="utf-8")
    return path


def audit_log_path(settings: StackSettings) -> Path:
    """The API server's audit log (pod writes with their specs), beside the stack's other logs."""
    return settings.log_path(AUDIT_LOG_NAME)


def _kubeconfigs(settings: StackSettings) -> dict[str, Path]:
    pki = _pki(settings)
    directory = base_dir(settings) / "kubeconfig"
    paths = {}
    for stem in ("admin", "controller-manager", "scheduler", "kubelet"):
        path = directory / f"{stem}.conf"
        write_kubeconfig(path, pki=pki, stem=stem, server=apiserver_url())
        paths[stem] = path
    return paths


# ------------------------------------------------------------------------------- processes


def _argv(settings: StackSettings, binaries: Path, service: str, configs: Mapping[str, Path]) -> list[str]:
    pki = _pki(settings)
    data = base_dir(settings)
    p = ports()
    if service == "containerd":
        return ["containerd", "--config", str(configs["containerd"])]
    if service == "etcd":
        peer = f"http://{LOCALHOST}:{p.etcd_peer}"
        client = f"http://{LOCALHOST}:{p.etcd_client}"
        return [
            "etcd",
            "--name=mlrepo",
            f"--data-dir={data / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=mlrepo={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
    if service == "kube-apiserver":
        return [
            str(binaries / service),
            f"--etcd-servers=http://{LOCALHOST}:{p.etcd_client}",
            f"--bind-address={LOCALHOST}",
            f"--advertise-address={NODE_IP}",
            f"--secure-port={p.apiserver}",
            f"--service-cluster-ip-range={SERVICE_SUBNET}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=false",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            "--profiling=false",
            f"--audit-policy-file={configs['audit-policy']}",
            f"--audit-log-path={audit_log_path(settings)}",
            "--audit-log-maxsize=100",
            "--audit-log-maxbackup=2",
            "--v=1",
        ]
    if service == "kube-controller-manager":
        return [
            str(binaries / service),
            f"--kubeconfig={configs['controller-manager']}",
            f"--authentication-kubeconfig={configs['controller-manager']}",
            f"--authorization-kubeconfig={configs['controller-manager']}",
            f"--bind-address={LOCALHOST}",
            f"--secure-port={p.controller_manager}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_SUBNET}",
            "--controllers=*,-nodeipam,-route,-service,-cloud-node-lifecycle",
            "--profiling=false",
            "--v=1",
        ]
    if service == "kube-scheduler":
        return [
            str(binaries / service),
            f"--kubeconfig={configs['scheduler']}",
            f"--authentication-kubeconfig={configs['scheduler']}",
            f"--authorization-kubeconfig={configs['scheduler']}",
            f"--bind-address={LOCALHOST}",
            f"--secure-port={p.scheduler}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]
    if service == "kubelet":
        return [
            str(binaries / service),
            f"--config={configs['kubelet-config']}",
            f"--kubeconfig={configs['kubelet']}",
            f"--root-dir={data / 'kubelet'}",
            f"--cert-dir={data / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ]
    if service == "lakefs-pod-proxy":
        return [
            "socat",
            f"TCP-LISTEN:{settings.lakefs_port},bind={NODE_IP},fork,reuseaddr",
            f"TCP:{LOCALHOST}:{settings.lakefs_port}",
        ]
    raise ValueError(service)


def _start(settings: StackSettings, service: str, argv: list[str], ready: Any) -> int:
    pid_path = _pid(settings, service)
    pid = read_pid_file(pid_path)
    if pid is None:
        pid = start_detached(
            argv, env=dict(os.environ), log_path=_log(settings, service), pid_path=pid_path, cwd=base_dir(settings)
        )
    if not wait_until(ready, timeout=START_TIMEOUT, keep_waiting=lambda: is_alive(pid)):
        alive = is_alive(pid)
        raise StackError(
            f"{service} {'did not become ready' if alive else 'exited'} "
            f"(log {_log(settings, service)}):\n{log_tail(_log(settings, service))}"
        )
    return pid


def start_containerd(settings: StackSettings, argv: list[str]) -> int:
    """Start containerd (or reuse the running one) and return once it accepts connections on its socket.

    The socket file of a containerd that was killed stays behind, so "the file exists" would call a
    containerd ready that is still loading its plugins, and the next ``ctr`` call would be refused.
    """
    socket = containerd_socket(settings)
    if read_pid_file(_pid(settings, "containerd")) is None:
        socket.unlink(missing_ok=True)
    return _start(settings, "containerd", argv, lambda: unix_socket_accepts(socket))


def _https_ready(port: int, path: str = "/healthz") -> bool:
    import ssl
    import urllib.request

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://{LOCALHOST}:{port}{path}", context=context, timeout=3) as answer:
            return bool(answer.status == 200)
    except Exception:
        return False


# ------------------------------------------------------------------------------------ API


def api_client(settings: StackSettings) -> Any:
    """A ``kubernetes.client.ApiClient`` with the admin kubeconfig."""
    from kubernetes import config as kube_config

    return kube_config.new_client_from_config(config_file=str(kubeconfig_path(settings)))


def _node_ready(settings: StackSettings) -> tuple[bool, str]:
    from kubernetes import client

    try:
        core = client.CoreV1Api(api_client(settings))
        node = core.read_node(NODE_NAME, _request_timeout=5)
    except Exception as err:
        return False, str(err).splitlines()[0] if str(err) else type(err).__name__
    for condition in node.status.conditions or []:
        if condition.type == "Ready":
            return condition.status == "True", str(node.status.node_info.kubelet_version)
    return False, ""


def _ensure_lakefs_secret(settings: StackSettings, secrets: Mapping[str, str], namespace: str) -> None:
    """The namespace, and in it the Secret ``mlrepo-lakefs`` with the stack's lakeFS credentials."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client(settings))
    try:
        core.read_namespace(namespace)
    except ApiException as err:
        if err.status != 404:
            raise
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=LAKEFS_SECRET_NAME, labels={"app.kubernetes.io/part-of": "airflow-mlrepo"}),
        string_data={
            "access_key_id": secrets["LAKEFS_ACCESS_KEY_ID"],
            "secret_access_key": secrets["LAKEFS_SECRET_ACCESS_KEY"],
        },
        type="Opaque",
    )
    try:
        core.replace_namespaced_secret(LAKEFS_SECRET_NAME, namespace, body)
    except ApiException as err:
        if err.status != 404:
            raise
        core.create_namespaced_secret(namespace, body)


def _default_service_account_exists(settings: StackSettings) -> bool:
    from kubernetes import client

    try:
        client.CoreV1Api(api_client(settings)).read_namespaced_service_account("default", NAMESPACE, _request_timeout=5)
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------------------- up/down


def up(settings: StackSettings, secrets: Mapping[str, str]) -> ComponentStatus:
    """Start (or reuse) the whole cluster; import the pause image; create the lakeFS Secret."""
    from mlrepo_devstack.stack import kubernetes_images

    started = time.monotonic()
    _check_host(settings)
    binaries = ensure_binaries(settings)
    data = base_dir(settings)
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    ensure_pki(_pki(settings), node_name=NODE_NAME, node_ip=NODE_IP, service_ip=SERVICE_IP)
    configs: dict[str, Path] = {**_kubeconfigs(settings)}
    configs["containerd"] = _containerd_config(settings)
    configs["kubelet-config"] = _kubelet_config(settings)
    configs["audit-policy"] = _audit_policy(settings)
    _ensure_bridge()
    _remember_sysctls(settings)
    p = ports()
    start_containerd(settings, _argv(settings, binaries, "containerd", configs))
    kubernetes_images.ensure_pause_image(settings)
    _start(settings, "etcd", _argv(settings, binaries, "etcd", configs), lambda: port_is_open(LOCALHOST, p.etcd_client))
    _start(
        settings,
        "kube-apiserver",
        _argv(settings, binaries, "kube-apiserver", configs),
        lambda: _https_ready(p.apiserver, "/readyz"),
    )
    _start(
        settings,
        "kube-controller-manager",
        _argv(settings, binaries, "kube-controller-manager", configs),
        lambda: _https_ready(p.controller_manager),
    )
    _start(
        settings,
        "kube-scheduler",
        _argv(settings, binaries, "kube-scheduler", configs),
        lambda: _https_ready(p.scheduler),
    )
    _start(settings, "kubelet", _argv(settings, binaries, "kubelet", configs), lambda: _node_ready(settings)[0])
    _start(
        settings,
        "lakefs-pod-proxy",
        _argv(settings, binaries, "lakefs-pod-proxy", configs),
        lambda: port_is_open(NODE_IP, settings.lakefs_port),
    )
    if not wait_until(lambda: _default_service_account_exists(settings), timeout=START_TIMEOUT):
        raise StackError(
            f"the ServiceAccount default/default did not appear; see {_log(settings, 'kube-controller-manager')}"
        )
    for namespace in POD_NAMESPACES:
        _ensure_lakefs_secret(settings, secrets, namespace)
    kubernetes_images.ensure_base_image(settings)  # also the XCom sidecar's image
    source = kubernetes_images.source_root()
    if source is not None:
        for name in kubernetes_images.requested_images():
            kubernetes_images.ensure_project_image(settings, source, name)
    log.info(
        "Kubernetes %s ready in %.1fs; kubeconfig %s",
        KUBERNETES_VERSION,
        time.monotonic() - started,
        kubeconfig_path(settings),
    )
    return status(settings)


def _cgroup_pids(root: Path) -> Iterator[int]:
    for procs in root.rglob("cgroup.procs"):
        try:
            text = procs.read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.split():
            if line.isdigit():
                yield int(line)


def _kill_pods() -> None:
    """SIGKILL every process in the kubelet's ``kubepods`` cgroups (the pods' containers)."""
    cgroup_root = Path("/sys/fs/cgroup")
    trees = [controller / "kubepods" for controller in cgroup_root.iterdir() if (controller / "kubepods").is_dir()]
    for _ in range(20):
        pids = {pid for tree in trees for pid in _cgroup_pids(tree)}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.25)


def _kill_shims(settings: StackSettings) -> None:
    """SIGKILL the containerd shims started by *our* containerd (their ``-address`` is our socket)."""
    marker = str(containerd_socket(settings)).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and marker in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines():
        mount_point = line.split()[1].replace("\\040", " ")
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            found.append(mount_point)
    return found


def _unmount_all(settings: StackSettings) -> None:
    for _ in range(5):
        mounts = _mounts_under(base_dir(settings))
        netns = [m for m in _mounts_under(Path("/run/netns")) if Path(m).name.startswith("cni-")]
        if not mounts and not netns:
            break
        for mount_point in sorted(mounts + netns, key=len, reverse=True):
            _run(["umount", "-l", mount_point], check=False)
    netns_dir = Path("/run/netns")
    if netns_dir.is_dir():
        for entry in netns_dir.glob("cni-*"):
            entry.unlink(missing_ok=True)


def down(settings: StackSettings) -> bool:
    """Stop the cluster and undo what it changed on the host (mounts, netns, bridge, sysctls)."""
    from mlrepo_devstack.stack import kubernetes_images

    stopped = False
    for service in ("lakefs-pod-proxy", "kubelet"):
        stopped = stop_process(_pid(settings, service), service) or stopped
    _kill_pods()
    _kill_shims(settings)
    stopped = kubernetes_images.stop_docker(settings) or stopped
    for service in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "containerd"):
        stopped = stop_process(_pid(settings, service), service) or stopped
    _unmount_all(settings)
    if _run(["ip", "link", "show", BRIDGE], check=False).returncode == 0:
        _run(["ip", "link", "delete", BRIDGE], check=False)
    _restore_sysctls(settings)
    return stopped


def status(settings: StackSettings) -> ComponentStatus:
    pids = {service: read_pid_file(_pid(settings, service)) for service in SERVICES}
    down_services = [service for service, pid in pids.items() if pid is None]
    if len(down_services) == len(SERVICES):
        return ComponentStatus(KUBERNETES, "stopped")
    if down_services:
        return ComponentStatus(
            KUBERNETES, "stopped", endpoint=apiserver_url(), detail=f"not running: {', '.join(down_services)}"
        )
    ready, kubelet_version = _node_ready(settings)
    if not ready:
        return ComponentStatus(
            KUBERNETES,
            "stopped",
            endpoint=apiserver_url(),
            detail=f"node {NODE_NAME} not Ready ({kubelet_version})",
            pid=pids["kube-apiserver"],
        )
    containerd_version = _run(["containerd", "--version"], check=False).stdout.split()
    detail = (
        f"node {NODE_NAME} Ready, kubelet {kubelet_version}, containerd "
        f"{containerd_version[2] if len(containerd_version) > 2 else '?'}, kubeconfig {kubeconfig_path(settings)}"
    )
    return ComponentStatus(
        KUBERNETES,
        "running",
        endpoint=apiserver_url(),
        detail=detail,
        pid=pids["kube-apiserver"],
        version=kubelet_version,
        extra_endpoints={"lakeFS for pods": lakefs_endpoint_in_pod(settings)},
    )

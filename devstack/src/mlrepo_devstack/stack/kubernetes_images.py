"""Container images for the stack's cluster, made on this machine (no registry is needed).

* The **pause image** (the sandbox every pod starts with): a static C program (``pause()``, exit on
  SIGINT/SIGTERM, reap children), ``gcc -static``, packed as a one-layer docker-archive.
* The **base image** ``mlrepo.local/debian-python:bookworm``: ``debootstrap --variant=minbase``
  of Debian bookworm with ``python3``, ``pip`` and ``ca-certificates`` (Python 3.11, like the
  Dockerfiles' upstream default ``python:3.11-slim``), the host's extra CA certificates installed.
  It is the Dockerfiles' ``BASE_IMAGE`` here, and the image of KubernetesPodOperator's XCom sidecar
  (it has ``sh``, ``sleep``, ``cat`` and ``kill``).
* The **project images** (``docker/<name>/Dockerfile``, context the repository root) built by
  Debian's Docker engine (``dockerd`` on the cluster's containerd, started here, no iptables, no
  bridge, builds with ``--network host``), with ``BASE_IMAGE`` and ``EXTRA_CA_CERTIFICATES``
  build args.

Every image is saved as a tar under ``<cache>/kubernetes/images/<name>-<content hash>.tar``:
the hash covers everything that goes into it (Dockerfile, the files it copies, build args, the
base's hash), so an image is rebuilt only when one of its inputs changes, and a fresh cluster
imports the cached tars without building (``ctr -n k8s.io images import``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import StackError
from mlrepo_devstack.stack import debian
from mlrepo_devstack.stack.health import wait_until
from mlrepo_devstack.stack.processes import (
    is_alive,
    last_lines,
    log_tail,
    read_pid_file,
    run_logged,
    start_detached,
    stop_process,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from mlrepo_devstack.stack.state import StackSettings

log = logging.getLogger(__name__)

BASE_IMAGE = "mlrepo.local/debian-python:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES: tuple[str, ...] = ("python3", "python3-pip", "python-is-python3", "ca-certificates")
#: Where Debian keeps locally added CA certificates (``update-ca-certificates`` reads it).
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
BUILD_TIMEOUT = 3600.0
#: Files and folders never part of an image's inputs.
IGNORED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", "build", "dist"})

PAUSE_SOURCE = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int signum) { (void)signum; _exit(0); }
static void reap(int signum) { (void)signum; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction sa_stop = {.sa_handler = stop};
    struct sigaction sa_reap = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &sa_stop, NULL);
    sigaction(SIGTERM, &sa_stop, NULL);
    sigaction(SIGCHLD, &sa_reap, NULL);
    for (;;) pause();
    return 0;
}
"""


@dataclass(frozen=True)
class ProjectImage:
    """An image built from one of the project's Dockerfiles (context: the repository root)."""

    name: str
    tag: str
    dockerfile: str
    #: Paths (relative to the repository root) the Dockerfile copies: the inputs of the content hash.
    sources: tuple[str, ...]


PROJECT_IMAGES: dict[str, ProjectImage] = {
    image.name: image
    for image in (
        ProjectImage("iris", "ghcr.io/airflow-mlrepo/iris:0.1.0", "docker/iris/Dockerfile", ("sdk", "docker/iris")),
        ProjectImage(
            "tensorflow",
            "ghcr.io/airflow-mlrepo/tensorflow:0.1.0",
            "docker/tensorflow/Dockerfile",
            ("sdk", "docker/iris", "docker/tensorflow"),
        ),
        ProjectImage(
            "spark",
            "ghcr.io/airflow-mlrepo/spark:0.1.0",
            "docker/spark/Dockerfile",
            ("sdk", "docker/iris", "docker/spark"),
        ),
        ProjectImage(
            "pmml", "ghcr.io/airflow-mlrepo/pmml:0.1.0", "docker/pmml/Dockerfile", ("sdk", "docker/iris", "docker/pmml")
        ),
        ProjectImage(
            "h2o", "ghcr.io/airflow-mlrepo/h2o:0.1.0", "docker/h2o/Dockerfile", ("sdk", "docker/iris", "docker/h2o")
        ),
        ProjectImage(
            "airflow",
            "airflow-mlrepo:0.1.0",
            "docker/airflow/Dockerfile",
            ("pyproject.toml", "README.md", "src", "sdk", "docker/iris", "dags"),
        ),
    )
}


def source_root() -> Path | None:
    """The repository checkout the Dockerfiles are in (``MLREPO_SOURCE_DIR``, else found from here)."""
    configured = os.environ.get("MLREPO_SOURCE_DIR", "").strip()
    candidates = [Path(configured)] if configured else list(Path(__file__).resolve().parents)
    for candidate in candidates:
        if (candidate / "docker" / "iris" / "Dockerfile").is_file() and (candidate / "sdk").is_dir():
            return candidate
    return None


def requested_images() -> list[str]:
    """``MLREPO_KUBERNETES_IMAGES`` (comma-separated names of :data:`PROJECT_IMAGES`), default ``iris``."""
    raw = os.environ.get("MLREPO_KUBERNETES_IMAGES", "iris")
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(names) - set(PROJECT_IMAGES))
    if unknown:
        raise StackError(
            f"MLREPO_KUBERNETES_IMAGES: unknown image(s) {', '.join(unknown)}; choose from {', '.join(PROJECT_IMAGES)}"
        )
    return names


def images_dir(settings: StackSettings) -> Path:
    return settings.cache_dir / "kubernetes" / "images"


def _ctr(settings: StackSettings) -> list[str]:
    from mlrepo_devstack.stack.kubernetes import containerd_socket

    return ["ctr", "--address", str(containerd_socket(settings)), "--namespace", "k8s.io"]


def _docker_socket(settings: StackSettings) -> Path:
    from mlrepo_devstack.stack.kubernetes import base_dir

    return base_dir(settings) / "docker" / "docker.sock"


def _docker(settings: StackSettings) -> list[str]:
    return ["docker", "-H", f"unix://{_docker_socket(settings)}"]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(completed: subprocess.CompletedProcess[str], what: str, log_path: Path) -> None:
    if completed.returncode != 0:
        raise StackError(
            f"{what} failed (exit {completed.returncode}); see {log_path}:\n"
            f"{last_lines(completed.stderr or completed.stdout)}"
        )


# --------------------------------------------------------------------------- image archives


def write_docker_archive(
    target: Path,
    *,
    tag: str,
    layer: Path,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
) -> None:
    """A one-layer ``docker save``-format archive of the layer tar ``layer`` (``docker load`` / ``ctr import``)."""
    diff_id = f"sha256:{_sha256_file(layer)}"
    config: dict[str, object] = {"Env": list(env)}
    if entrypoint:
        config["Entrypoint"] = list(entrypoint)
    if cmd:
        config["Cmd"] = list(cmd)
    image_config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "airflow-mlrepo dev stack"}],
        },
        sort_keys=True,
    ).encode()
    config_name = f"{hashlib.sha256(image_config).hexdigest()}.json"
    layer_name = f"{diff_id.removeprefix('sha256:')}/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]).encode()
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(partial, "w") as archive:
        for name, payload in ((config_name, image_config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        archive.add(layer, arcname=layer_name)
    os.replace(partial, target)


def _cached_archive(settings: StackSettings, name: str, key: str) -> Path:
    return images_dir(settings) / f"{name}-{key}.tar"


def _remove_older(settings: StackSettings, name: str, keep: Path) -> None:
    for old in images_dir(settings).glob(f"{name}-*.tar"):
        if old != keep:
            old.unlink(missing_ok=True)


def pause_archive(settings: StackSettings) -> Path:
    """The cached pause image archive, compiled when missing."""
    from mlrepo_devstack.stack.kubernetes import PAUSE_IMAGE

    key = hashlib.sha256(f"{PAUSE_IMAGE}\n{PAUSE_SOURCE}".encode()).hexdigest()[:16]
    target = _cached_archive(settings, "pause", key)
    if target.is_file():
        return target
    if shutil.which("gcc") is None:
        debian.install_packages(["--no-install-recommends", "gcc", "libc6-dev"], log_path=settings.log_path("k8s-apt"))
    build_log = settings.log_path("k8s-images")
    with tempfile.TemporaryDirectory(prefix="mlrepo-pause-") as work:
        source = Path(work, "pause.c")
        source.write_text(PAUSE_SOURCE, encoding="utf-8")
        binary = Path(work, "pause")
        _check(
            run_logged(["gcc", "-static", "-Os", "-o", str(binary), str(source)], log_path=build_log),
            "compiling the pause program",
            build_log,
        )
        run_logged(["strip", str(binary)], log_path=build_log)
        layer = Path(work, "layer.tar")
        with tarfile.open(layer, "w") as archive:
            info = archive.gettarinfo(str(binary), arcname="pause")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with binary.open("rb") as handle:
                archive.addfile(info, handle)
        write_docker_archive(target, tag=PAUSE_IMAGE, layer=layer, entrypoint=["/pause"], env=())
    _remove_older(settings, "pause", target)
    return target


def _extra_ca_certificates() -> str:
    """The PEM text of the host's locally added CA certificates (Debian's local CA folder), or ``""``."""
    if not LOCAL_CA_DIR.is_dir():
        return ""
    parts = [path.read_text(encoding="ascii", errors="replace").strip() for path in sorted(LOCAL_CA_DIR.rglob("*.crt"))]
    return "\n".join(part for part in parts if part) + ("\n" if parts else "")


def base_archive(settings: StackSettings) -> Path:
    """The cached base image archive, made with debootstrap when missing (a few minutes)."""
    extra_ca = _extra_ca_certificates()
    key_text = json.dumps(
        {"suite": DEBIAN_SUITE, "packages": sorted(BASE_PACKAGES), "tag": BASE_IMAGE, "ca": extra_ca}, sort_keys=True
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    target = _cached_archive(settings, "debian-python", key)
    if target.is_file():
        return target
    if shutil.which("debootstrap") is None:
        debian.install_packages(["--no-install-recommends", "debootstrap"], log_path=settings.log_path("k8s-apt"))
    build_log = settings.log_path("k8s-images")
    log.info("making the base image %s with debootstrap (a few minutes; log: %s)", BASE_IMAGE, build_log)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mlrepo-base-", dir=images_dir(settings).parent))
    try:
        rootfs = work / "rootfs"
        _check(
            run_logged(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                log_path=build_log,
                timeout=BUILD_TIMEOUT,
            ),
            "debootstrap of the base image",
            build_log,
        )
        if extra_ca:
            (rootfs / "usr/local/share/ca-certificates/mlrepo-extra.crt").write_text(extra_ca, encoding="ascii")
            _check(
                run_logged(["chroot", str(rootfs), "update-ca-certificates"], log_path=build_log),
                "update-ca-certificates in the base image",
                build_log,
            )
        run_logged(["chroot", str(rootfs), "apt-get", "clean"], log_path=build_log)
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log"):
            for child in (rootfs / leftover).glob("*"):
                if child.is_file():
                    child.unlink()
        layer = work / "layer.tar"
        _check(
            run_logged(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(layer), "."], log_path=build_log),
            "packing the base image",
            build_log,
        )
        write_docker_archive(
            target,
            tag=BASE_IMAGE,
            layer=layer,
            cmd=["python3"],
            env=(
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                # Debian marks its Python "externally managed"; an image is its own environment.
                "PIP_BREAK_SYSTEM_PACKAGES=1",
                "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
            ),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _remove_older(settings, "debian-python", target)
    log.info("base image %s made in %.0fs", BASE_IMAGE, time.monotonic() - started)
    return target


# ------------------------------------------------------------------------------ containerd


def imported_images(settings: StackSettings) -> set[str]:
    completed = subprocess.run(
        [*_ctr(settings), "images", "list", "--quiet"], capture_output=True, text=True, timeout=60, check=False
    )
    return set(completed.stdout.split()) if completed.returncode == 0 else set()


def import_archive(settings: StackSettings, archive: Path, tag: str) -> None:
    """``ctr images import`` unless this very archive (by file name) is what ``tag`` was imported from."""
    marker = settings.state_dir / "kubernetes" / "imported" / hashlib.sha256(tag.encode()).hexdigest()[:16]
    if tag in imported_images(settings) and marker.is_file() and marker.read_text(encoding="utf-8") == archive.name:
        return
    build_log = settings.log_path("k8s-images")
    started = time.monotonic()
    _check(
        run_logged([*_ctr(settings), "images", "import", str(archive)], log_path=build_log, timeout=BUILD_TIMEOUT),
        f"importing {archive.name} into containerd",
        build_log,
    )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(archive.name, encoding="utf-8")
    log.info("imported %s (%s) in %.1fs", tag, archive.name, time.monotonic() - started)


def ensure_pause_image(settings: StackSettings) -> None:
    from mlrepo_devstack.stack.kubernetes import PAUSE_IMAGE

    import_archive(settings, pause_archive(settings), PAUSE_IMAGE)


def ensure_base_image(settings: StackSettings) -> Path:
    archive = base_archive(settings)
    import_archive(settings, archive, BASE_IMAGE)
    return archive


# ---------------------------------------------------------------------------------- docker


def ensure_docker(settings: StackSettings) -> None:
    """Start Debian's ``dockerd`` on the cluster's containerd (no iptables, no bridge), unless running."""
    from mlrepo_devstack.stack.kubernetes import base_dir, containerd_socket

    if shutil.which("dockerd") is None:
        debian.install_packages(["--no-install-recommends", "docker.io"], log_path=settings.log_path("k8s-apt"))
    pid_path = settings.pid_path("k8s-dockerd")
    pid = read_pid_file(pid_path)
    root = base_dir(settings) / "docker"
    if pid is None:
        root.mkdir(parents=True, exist_ok=True)
        pid = start_detached(
            [
                "dockerd",
                "--containerd",
                str(containerd_socket(settings)),
                "--data-root",
                str(root / "data"),
                "--exec-root",
                str(root / "exec"),
                "--pidfile",
                str(root / "dockerd.pid"),
                "-H",
                f"unix://{_docker_socket(settings)}",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
            ],
            env=dict(os.environ),
            log_path=settings.log_path("k8s-dockerd"),
            pid_path=pid_path,
            cwd=root,
        )

    def answers() -> bool:
        completed = subprocess.run(
            [*_docker(settings), "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return completed.returncode == 0

    if not wait_until(answers, timeout=60.0, keep_waiting=lambda: is_alive(pid)):
        raise StackError(
            f"dockerd did not start (log {settings.log_path('k8s-dockerd')}):\n"
            f"{log_tail(settings.log_path('k8s-dockerd'))}"
        )


def stop_docker(settings: StackSettings) -> bool:
    return stop_process(settings.pid_path("k8s-dockerd"), "dockerd")


def _input_files(root: Path, sources: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        path = root / source
        if path.is_file():
            files.append(path)
            continue
        for candidate in sorted(path.rglob("*")):
            relative = candidate.relative_to(root)
            if any(part in IGNORED_NAMES or part.endswith(".egg-info") for part in relative.parts):
                continue
            if candidate.is_file():
                files.append(candidate)
    return sorted(files)


def content_hash(root: Path, image: ProjectImage, build_args: dict[str, str]) -> str:
    """Hash of everything an image is made of: its Dockerfile, the files it copies, its build args."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"tag": image.tag, "args": build_args}, sort_keys=True).encode())
    for path in [root / image.dockerfile, *_input_files(root, image.sources)]:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _build_context(root: Path, image: ProjectImage, work: Path) -> Path:
    context = work / "context"
    context.mkdir()
    for path in [root / image.dockerfile, *_input_files(root, image.sources)]:
        target = context / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return context


def ensure_project_image(settings: StackSettings, root: Path, name: str) -> str:
    """Build (when its inputs changed) and import ``docker/<name>``'s image; return its tag."""
    image = PROJECT_IMAGES[name]
    base = ensure_base_image(settings)
    build_args = {
        "BASE_IMAGE": BASE_IMAGE,
        "BASE_IMAGE_ARCHIVE": base.name,
        "EXTRA_CA_CERTIFICATES": _extra_ca_certificates(),
    }
    key = content_hash(root, image, build_args)
    archive = _cached_archive(settings, name, key)
    if not archive.is_file():
        build_log = settings.log_path("k8s-images")
        ensure_docker(settings)
        log.info("building image %s from %s (log: %s)", image.tag, image.dockerfile, build_log)
        started = time.monotonic()
        _check(
            run_logged([*_docker(settings), "load", "--input", str(base)], log_path=build_log, timeout=BUILD_TIMEOUT),
            "docker load of the base image",
            build_log,
        )
        work = Path(tempfile.mkdtemp(prefix=f"mlrepo-image-{name}-", dir=images_dir(settings).parent))
        try:
            context = _build_context(root, image, work)
            argv = [
                *_docker(settings),
                "build",
                "--network",
                "host",
                "--pull=false",
                "-f",
                str(context / image.dockerfile),
                "-t",
                image.tag,
            ]
            for arg, value in build_args.items():
                if arg != "BASE_IMAGE_ARCHIVE":
                    argv += ["--build-arg", f"{arg}={value}"]
            _check(
                run_logged([*argv, str(context)], log_path=build_log, timeout=BUILD_TIMEOUT),
                f"docker build of {image.tag}",
                build_log,
            )
            partial = work / "image.tar"
            _check(
                run_logged(
                    [*_docker(settings), "save", "--output", str(partial), image.tag],
                    log_path=build_log,
                    timeout=BUILD_TIMEOUT,
                ),
                f"docker save of {image.tag}",
                build_log,
            )
            archive.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _remove_older(settings, name, archive)
        log.info("built %s in %.0fs", image.tag, time.monotonic() - started)
    import_archive(settings, archive, image.tag)
    return image.tag

"""Building the docker backend's image from sandbox/Dockerfile with the docker SDK: one image per task
runtime profile (sandbox/runtimes.py), its packages pinned to the versions installed in this interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runtimes import DEFAULT_RUNTIME, Runtime, build_packages, get_runtime, image_tag

DEFAULT_IMAGE = image_tag(get_runtime(DEFAULT_RUNTIME))
DEFAULT_BASE = "gymforge-base:bookworm"
DOCKERFILE = Path(__file__).with_name("Dockerfile")


def build_args(runtime: Runtime, base: str = DEFAULT_BASE, packages: str | None = None,
               pip_args: str = "") -> dict[str, str]:
    """The Dockerfile's build arguments for a runtime's image: its packages pinned to this venv's versions
    (or `packages` as given) and extra pip arguments (e.g. an index that serves CPU-only torch wheels)."""
    return {"BASE": base, "PACKAGES": packages or build_packages(runtime), "PIP_ARGS": pip_args,
            "RUNTIME": runtime.name}


def default_ca_bundle() -> Path | None:
    """The CA bundle pip on this machine is told to trust, if any (needed behind a TLS-inspecting proxy)."""
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return None


def build_image(
    client: Any,
    runtime: Runtime,
    tag: str | None = None,
    base: str = DEFAULT_BASE,
    packages: str | None = None,
    ca_bundle: Path | None = None,
    pip_args: str = "",
    log: Callable[[str], None] = lambda line: None,
) -> str:
    """Build the runtime's image (tagged `image_tag(runtime)` unless `tag`); returns its id. Raises
    docker.errors.BuildError with the build log on failure."""
    with tempfile.TemporaryDirectory(prefix="gf-image-") as ctx:
        shutil.copy(DOCKERFILE, Path(ctx) / "Dockerfile")
        ca = Path(ctx) / "ca.pem"
        ca.write_bytes(ca_bundle.read_bytes() if ca_bundle else b"")
        image, logs = client.images.build(
            path=ctx,
            tag=tag or image_tag(runtime),
            buildargs=build_args(runtime, base, packages, pip_args),
            network_mode="host",
            rm=True,
            forcerm=True,
        )
        for entry in logs:
            if "stream" in entry:
                log(entry["stream"].rstrip("\n"))
    return image.id


def make_rootfs(target: Path, suite: str = "bookworm") -> None:
    """A minimal Debian root with python3 (needs root and debootstrap), to import as the base image."""
    if not shutil.which("debootstrap"):
        raise FileNotFoundError("debootstrap not found: apt-get install debootstrap")
    subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                    suite, str(target)], check=True, stdout=subprocess.DEVNULL)


def import_rootfs(client: Any, rootfs: Path, tag: str = DEFAULT_BASE) -> None:
    """Import a root filesystem (a directory or a tarball) as image `tag`, through the SDK."""
    if Path(rootfs).is_file():
        _import(client, Path(rootfs), tag)
        return
    with tempfile.TemporaryDirectory(prefix="gf-rootfs-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        _import(client, tarball, tag)


def _import(client: Any, tarball: Path, tag: str) -> None:
    # the repository carries the tag (podman ignores a separate tag); then tag the id to be sure
    answer = client.api.import_image_from_file(str(tarball), repository=tag)
    image_id = json.loads(answer.strip().splitlines()[-1]).get("id") if isinstance(answer, str) else None
    if image_id:
        repository, _, version = tag.rpartition(":")
        client.images.get(image_id).tag(repository or tag, version if repository else "latest")

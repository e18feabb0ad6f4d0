"""GPU pass-through (`sandbox_gpus`): the setting, the bwrap arguments over a fake /dev, /proc and driver
tree, a real bwrap session given those fake devices, the process backend's variables, the docker create
request, and what `sandbox check` reports. These machines have no GPU: the device nodes here are files."""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import pytest

from gymforge import config
from gymforge.errors import UserError
from sandbox import Limits, SandboxUnavailable, backend_for, get_backend
from sandbox.bwrap import BwrapBackend
from sandbox.gpu import GpuHost, device_requests, driver_lib_path, gpu_binds, gpu_env, host_gpus, parse_gpus

needs_bwrap = pytest.mark.skipif(not shutil.which("bwrap"), reason="bwrap not installed: apt-get install bubblewrap")
GPU_VARS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "LD_LIBRARY_PATH")


@pytest.fixture
def fake(tmp_path: Path) -> GpuHost:
    """A host with three GPUs (0, 1, 2), the control nodes but nvidia-modeset, the driver's /proc and a
    library directory holding its libraries (with their symlinks) beside an unrelated one."""
    dev, proc, lib = tmp_path / "dev", tmp_path / "proc" / "driver" / "nvidia", tmp_path / "lib"
    for d in (dev, proc, lib):
        d.mkdir(parents=True)
    for name in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1", "nvidia2", "null"):
        (dev / name).write_text(f"node {name}\n")
    (proc / "version").write_text("NVRM version: 535.104.05\n")
    for name in ("libcuda.so.535.104.05", "libnvidia-ml.so.535.104.05", "libfoo.so.1"):
        (lib / name).write_text(f"lib {name}\n")
    (lib / "libcuda.so.1").symlink_to("libcuda.so.535.104.05")
    (lib / "libnvidia-ml.so.1").symlink_to("libnvidia-ml.so.535.104.05")
    (lib / "libnvidia-gone.so.1").symlink_to("libnvidia-gone.so.9")  # dangling: left out
    return GpuHost(dev_root=dev, proc_root=tmp_path / "proc", lib_dirs=(str(tmp_path / "missing"), str(lib)))


# --- the setting ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "normal"), [
    (None, None), ("", None), ("  ", None), ("all", "all"), (" ALL ", "all"), ("0", "0"), (1, "1"),
    ("0,1", "0,1"), (" 3 , 1 ", "3,1"), ("07", "7"),
])
def test_gpu_choices_have_one_normal_form(given: object, normal: str | None) -> None:
    assert parse_gpus(given) == normal


@pytest.mark.parametrize("bad", ["gpu0", "0,,1", "-1", "0;1", "1.5", "0,0", "²", "all,0", "0,"])
def test_a_bad_gpu_choice_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="GPU"):
        parse_gpus(bad)


def test_the_setting_reaches_the_session_limits(tmp_path: Path) -> None:
    s = config.load(environ={"GYMFORGE_SANDBOX_GPUS": " 0, 2 "}, config_file=_toml(tmp_path, ""))
    assert s.sandbox.gpus == "0,2" and s.sandbox.limits().gpus == "0,2"
    assert config.load(environ={}, config_file=_toml(tmp_path, "")).sandbox.limits().gpus is None
    assert config.load(environ={}, config_file=_toml(tmp_path, "[sandbox]\ngpus = ''\n")).sandbox.gpus is None
    assert config.load(environ={}, config_file=_toml(tmp_path, "sandbox_gpus = 1\n")).sandbox.gpus == "1"
    dirs = config.load(environ={"GYMFORGE_SANDBOX_GPU_LIB_DIRS": "/opt/nv/lib:/usr/lib64"}, config_file=_toml(tmp_path, ""))
    assert dirs.sandbox.gpu_lib_dirs == ["/opt/nv/lib", "/usr/lib64"]
    for name in ("bwrap", "process"):
        if name == "bwrap" and not shutil.which("bwrap"):
            continue
        chosen = dirs.sandbox.model_copy(update={"backend": name, "allow_process": True})
        assert backend_for(chosen).gpu_host.lib_dirs == ("/opt/nv/lib", "/usr/lib64")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("env", "message"), [
    ({"GYMFORGE_SANDBOX_GPUS": "gpu0"}, r"bad setting sandbox_gpus \(GYMFORGE_SANDBOX_GPUS\) from environment: "
                                        r"Value error, GPUs must be 'all' or device indices like '0,1', not 'gpu0'"),
    ({"GYMFORGE_SANDBOX_GPUS": "1,1"}, "bad setting sandbox_gpus .*must not repeat"),
    ({"GYMFORGE_SANDBOX_GPU_LIB_DIRS": "lib64"}, "bad setting sandbox_gpu_lib_dirs .*absolute paths"),
])
def test_a_bad_setting_is_one_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message) as e:
        config.load(environ=env, config_file=_toml(tmp_path, ""))
    assert "\n" not in str(e.value)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gymforge.toml"
    path.write_text(text)
    return path


# --- what each backend is given ------------------------------------------------------------------------

def test_bwrap_arguments_for_chosen_gpus(fake: GpuHost) -> None:
    dev, lib = fake.dev_root, Path(fake.lib_dirs[1])
    assert gpu_binds("0,2", fake) == [
        "--dev-bind", f"{dev}/nvidiactl", "/dev/nvidiactl",
        "--dev-bind", f"{dev}/nvidia-uvm", "/dev/nvidia-uvm",
        "--dev-bind", f"{dev}/nvidia-uvm-tools", "/dev/nvidia-uvm-tools",
        "--dev-bind", f"{dev}/nvidia0", "/dev/nvidia0",
        "--dev-bind", f"{dev}/nvidia2", "/dev/nvidia2",
        "--ro-bind", f"{fake.proc_root}/driver/nvidia", "/proc/driver/nvidia",
        "--ro-bind", f"{lib}/libcuda.so.1", f"{lib}/libcuda.so.1",
        "--ro-bind", f"{lib}/libcuda.so.535.104.05", f"{lib}/libcuda.so.535.104.05",
        "--ro-bind", f"{lib}/libnvidia-ml.so.1", f"{lib}/libnvidia-ml.so.1",
        "--ro-bind", f"{lib}/libnvidia-ml.so.535.104.05", f"{lib}/libnvidia-ml.so.535.104.05",
    ]


def test_all_gpus_binds_every_node_and_libraries_already_visible_are_not_bound(fake: GpuHost) -> None:
    (fake.dev_root / "nvidia10").write_text("node\n")
    args = gpu_binds("all", fake, visible=[str(Path(fake.lib_dirs[1]).parent)])
    nodes = [args[i + 2] for i, a in enumerate(args) if a == "--dev-bind"]
    assert nodes == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia0", "/dev/nvidia1",
                     "/dev/nvidia2", "/dev/nvidia10"]
    assert not [a for a in args if "libcuda" in a or "libnvidia" in a]


def test_no_gpus_by_default(fake: GpuHost) -> None:
    assert gpu_binds(None, fake) == [] and gpu_binds("", fake) == []
    assert gpu_env(None, renumbered=True) == {} and driver_lib_path(None, fake) == {}
    assert device_requests(None) == []
    assert Limits().gpus is None


def test_a_gpu_that_is_not_there_is_a_clear_error(fake: GpuHost, tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match=r"asks for GPU 3 but .*/nvidia3 does not exist \(GPUs here: 0, 1, 2\)"):
        gpu_binds("0,3", fake)
    with pytest.raises(SandboxUnavailable, match="sandbox_gpus is 'all' but there is no"):
        gpu_binds("all", GpuHost(dev_root=tmp_path / "lib"))


def test_cuda_variables_per_backend(fake: GpuHost) -> None:
    assert gpu_env("1,2", renumbered=True) == {
        "NVIDIA_VISIBLE_DEVICES": "1,2", "CUDA_VISIBLE_DEVICES": "0,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert gpu_env("1,2", renumbered=False)["CUDA_VISIBLE_DEVICES"] == "1,2"
    assert gpu_env("all", renumbered=True) == {"NVIDIA_VISIBLE_DEVICES": "all", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert driver_lib_path("0", fake) == {"LD_LIBRARY_PATH": fake.lib_dirs[1]}
    assert driver_lib_path("0", GpuHost(lib_dirs=("/usr/lib/x86_64-linux-gnu",))) == {}  # the loader's own


def test_docker_create_request_carries_the_device_request(tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    from docker.models.containers import _create_container_args

    from sandbox.docker_backend import DockerSession

    def create_args(gpus: str | None) -> dict:
        session = DockerSession(None, "img", tmp_path, Limits(gpus=gpus), ())
        kwargs = session._run_kwargs(())
        kwargs.pop("detach")
        # what ContainerCollection.run hands the engine's create call
        return _create_container_args({**kwargs, "command": ["sleep", "infinity"], "version": "1.41"})

    everything = create_args("all")["host_config"]["DeviceRequests"]
    assert everything == [docker.types.DeviceRequest(driver="", count=-1, capabilities=[["gpu"]])]
    assert everything[0]["Count"] == -1 and everything[0]["Capabilities"] == [["gpu"]]
    listed = create_args("0,1")["host_config"]["DeviceRequests"]
    assert [(r["Count"], r["DeviceIDs"], r["Capabilities"]) for r in listed] == [(0, ["0", "1"], [["gpu"]])]
    assert "DeviceRequests" not in create_args(None)["host_config"]
    session = DockerSession(None, "img", tmp_path, Limits(gpus="0,1"), ())
    assert session._run_kwargs(())["device_requests"] == [
        {"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]]}]
    assert session.env["CUDA_VISIBLE_DEVICES"] == "0,1" and session.env["NVIDIA_VISIBLE_DEVICES"] == "0,1"
    assert not set(GPU_VARS) & set(DockerSession(None, "img", tmp_path, Limits(), ()).env)


# --- real sessions -------------------------------------------------------------------------------------

SHOW = "ls /dev | grep nvidia; cat /dev/nvidia* {lib}/libcuda.so.1 /proc/driver/nvidia/version 2>&1; env | grep -E 'CUDA|NVIDIA|LD_LIB'"


@needs_bwrap
async def test_a_bwrap_session_sees_the_chosen_gpus_only(fake: GpuHost, tmp_path: Path) -> None:
    """A real bwrap over the fake tree; /proc/driver/nvidia is left out of the fake host here (bwrap cannot
    make that directory in a procfs that has none: a GPU host's has it)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    host = GpuHost(dev_root=fake.dev_root, proc_root=tmp_path / "no-proc", lib_dirs=fake.lib_dirs)
    lib = fake.lib_dirs[1]
    async with await BwrapBackend(gpu_host=host).open(ws, Limits(gpus="2")) as s:
        r = await s.exec(SHOW.format(lib=lib))
    lines = r.stdout.splitlines()
    assert lines[:4] == ["nvidia-uvm", "nvidia-uvm-tools", "nvidia2", "nvidiactl"], r
    assert sorted(lines[4:8]) == ["node nvidia-uvm", "node nvidia-uvm-tools", "node nvidia2", "node nvidiactl"]
    assert lines[8] == "lib libcuda.so.535.104.05"
    assert sorted(lines[10:]) == ["CUDA_DEVICE_ORDER=PCI_BUS_ID", "CUDA_VISIBLE_DEVICES=0",
                                  f"LD_LIBRARY_PATH={lib}", "NVIDIA_VISIBLE_DEVICES=2"]
    async with await BwrapBackend(gpu_host=host).open(ws, Limits()) as s:  # the default: no GPU
        r = await s.exec(f"ls /dev /proc/driver {lib} 2>&1; env")
    assert "nvidia" not in r.stdout and "libcuda" not in r.stdout and f"'{lib}': No such file" in r.stdout
    assert not any(line.startswith(GPU_VARS) for line in r.stdout.splitlines())


@needs_bwrap
async def test_bwrap_refuses_a_missing_gpu_before_making_anything(fake: GpuHost, tmp_path: Path) -> None:
    before = set(glob.glob("/tmp/gf-sandbox-*"))
    with pytest.raises(SandboxUnavailable, match="asks for GPU 5"):
        await BwrapBackend(gpu_host=fake).open(tmp_path, Limits(gpus="0,5"))
    assert set(glob.glob("/tmp/gf-sandbox-*")) <= before


async def test_the_process_backend_gets_the_hosts_indices(fake: GpuHost, tmp_path: Path) -> None:
    from sandbox.process import ProcessBackend

    async with await ProcessBackend(allow=True, gpu_host=fake).open(tmp_path, Limits(gpus="1,2")) as s:
        r = await s.exec("env | grep -E 'CUDA|NVIDIA|LD_LIB' | sort")
    assert r.stdout.splitlines() == ["CUDA_DEVICE_ORDER=PCI_BUS_ID", "CUDA_VISIBLE_DEVICES=1,2",
                                     f"LD_LIBRARY_PATH={fake.lib_dirs[1]}", "NVIDIA_VISIBLE_DEVICES=1,2"]
    async with await get_backend("process", allow_process=True).open(tmp_path, Limits()) as s:
        r = await s.exec(["env"])
    assert not any(line.startswith(GPU_VARS) for line in r.stdout.splitlines())


# --- sandbox check -------------------------------------------------------------------------------------

def test_check_counts_the_gpu_nodes(fake: GpuHost) -> None:
    found = host_gpus(fake, smi=None)
    assert (found.count, found.devices) == (3, tuple(str(fake.dev_root / f"nvidia{i}") for i in range(3)))
    assert found.describe().startswith(f"3 ({fake.dev_root}/nvidia[0-9]*): ")


def test_check_says_none_on_a_host_without_gpus() -> None:
    if glob.glob("/dev/nvidia[0-9]*") or shutil.which("nvidia-smi"):
        pytest.skip("this host has NVIDIA GPUs or their driver")
    found = host_gpus()
    assert (found.count, found.devices, found.describe()) == (0, (), "none")

"""Thread caps: every backend sizes the thread pools of task code to the session's CPU limit, seen from
inside a real session (its environment, and the pools numpy and scikit-learn's OpenMP actually start)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from sandbox import Limits, get_backend
from sandbox.base import base_env
from sandbox.limits import THREAD_VARS, thread_env

# the pools a numerical episode starts: OpenBLAS (numpy, scipy) and OpenMP (scikit-learn)
POOLS = ("import json, numpy, sklearn.ensemble, threadpoolctl\n"
         "print(json.dumps([[p['internal_api'], p['num_threads']] for p in threadpoolctl.threadpool_info()]))")


@pytest.fixture(params=["bwrap", "process"])
def backend_name(request: pytest.FixtureRequest) -> str:
    if request.param == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bwrap not installed: apt-get install bubblewrap")
    return request.param


@pytest.mark.parametrize(("cpus", "cap"), [(0.5, "1"), (1.0, "1"), (1.5, "2"), (2.0, "2"), (3.0, "3")])
def test_the_cap_is_the_cpu_limit_rounded_up(cpus: float, cap: str) -> None:
    assert thread_env(Limits(cpus=cpus)) == dict.fromkeys(THREAD_VARS, cap)
    env = base_env(Limits(cpus=cpus), "/gf/work")
    assert {k: env[k] for k in THREAD_VARS} == dict.fromkeys(THREAD_VARS, cap)


@pytest.mark.parametrize(("cpus", "cap"), [(2.0, "2"), (0.5, "1")])
async def test_env_in_the_session_has_the_caps(backend_name: str, tmp_path: Path, cpus: float, cap: str) -> None:
    async with await get_backend(backend_name, allow_process=True).open(tmp_path, Limits(cpus=cpus)) as s:
        r = await s.exec(["env"])
    assert r.ok, r.stderr
    env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert {k: env.get(k) for k in THREAD_VARS} == dict.fromkeys(THREAD_VARS, cap)


async def test_numpy_and_openmp_pools_follow_the_limit(backend_name: str, tmp_path: Path) -> None:
    """On a host with more than one core, OpenBLAS would start a thread per core without the cap; and
    OpenMP takes a cap above the core count as given, so 3 CPUs is 3 threads even on 2 cores."""
    backend = get_backend(backend_name, allow_process=True)
    for cpus, expected in ((0.5, 1), (3.0, 3)):
        async with await backend.open(tmp_path, Limits(cpus=cpus, wall_time_s=60)) as s:
            r = await s.exec(["python", "-c", POOLS])
        assert r.ok, r.stderr
        pools = json.loads(r.stdout)
        assert {api for api, _ in pools} >= {"openblas", "openmp"}, pools
        assert all(n == expected for api, n in pools if api == "openmp"), pools
        # OpenBLAS never exceeds the host's cores (it caps its pool at them itself)
        assert all(n == min(expected, os.cpu_count() or 1) for api, n in pools if api == "openblas"), pools

"""The offline teacher under concurrent load: its policy runs off the event loop, and CPython 3.11's ast.parse
is not thread-safe (gh-106905: "AST constructor recursion depth mismatch" when parses overlap across threads
while the collector runs finalizers). The chaos run saw a solver call answered 500 for it. Many concurrent
solve requests whose conversation holds a baseline.py to parse, with garbage being collected meanwhile, must
all be answered."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp
import pytest

from domain.model_api import PURPOSE_HEADER
from teacher.server import TeacherServer
from teacher.solve import LIST_CMD, READ_CMD
from tests.test_teacher_solve import FACTS, SOURCE, instance

ROUNDS = 3
BIG_SOURCE = SOURCE + "".join(f"\n\ndef helper_{i}(x):\n    return [x + {i} for _ in range(3)]\n" for i in range(150))


def conversation() -> list[dict[str, Any]]:
    """Right after `cat baseline.py`: the next reply parses the source for its constants."""
    msgs = instance(FACTS)
    for command, output in ((LIST_CMD, "baseline.py\ndata\nevaluate.py"), (READ_CMD, BIG_SOURCE)):
        msgs += [{"role": "assistant", "content": f"THOUGHT: look.\n\n```bash\n{command}\n```\n"},
                 {"role": "user", "content": output}]
    return msgs


class Finalized:
    def __del__(self) -> None:
        pass


def make_garbage(stop: threading.Event) -> None:
    while not stop.is_set():
        junk: list[Any] = [Finalized() for _ in range(20)]
        junk.append(junk)  # a cycle: only the collector frees it
        time.sleep(0)  # lets the other threads have the GIL: collections keep coming, nobody starves


@pytest.mark.timeout(300)  # ~3 s idle; without the policy lock it fails within seconds (checked)
async def test_concurrent_solve_requests_are_all_answered() -> None:
    stop = threading.Event()
    garbage = threading.Thread(target=make_garbage, args=(stop,))
    body = {"model": "m", "messages": conversation(), "seed": 1}
    try:
        garbage.start()
        async with TeacherServer() as server, aiohttp.ClientSession() as http:
            async def ask() -> int:
                async with http.post(f"{server.base_url}/chat/completions", json=body,
                                     headers={PURPOSE_HEADER: "solve"}) as r:
                    return r.status

            statuses = [s for _ in range(ROUNDS) for s in await asyncio.gather(*(ask() for _ in range(16)))]
    finally:
        stop.set()
        garbage.join()
    assert statuses == [200] * (ROUNDS * 16)

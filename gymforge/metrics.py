"""In-process metrics in the Prometheus text format (0.0.4), and the hooks that feed them from outside
the agents: a timed wrapper round each runner's handler, the LLM client's usage callback, a metered
sandbox backend, and the consumers' own counters read at scrape time. No agent or bus code knows of it.

Each process reports only what it did itself, so Prometheus can sum replicas without double counting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from agents.runtime import AgentRunner
from domain.payloads import Usage

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: dict[str, Any]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = [*labels, extra] if extra else list(labels)
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}" if pairs else ""


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


class Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str) -> None:
        self.name, self.help = name, help
        self.values: dict[Labels, float] = {}

    def get(self, **labels: Any) -> float:
        return self.values.get(_labels(labels), 0.0)

    def samples(self) -> list[str]:
        return [f"{self.name}{_fmt_labels(k)} {_num(v)}" for k, v in sorted(self.values.items())]

    def render(self) -> str:
        head = f"# HELP {self.name} {self.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}\n"
        body = "".join(s + "\n" for s in self.samples())
        return head + f"# TYPE {self.name} {self.kind}\n" + body


class Counter(Metric):
    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = _labels(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def set_total(self, value: float, **labels: Any) -> None:
        """For a total kept elsewhere (read at scrape time): never lower than what was reported."""
        key = _labels(labels)
        self.values[key] = max(self.values.get(key, 0.0), float(value))


class Gauge(Metric):
    kind = "gauge"

    def set(self, value: float, **labels: Any) -> None:
        self.values[_labels(labels)] = float(value)


class Histogram(Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[Labels, list[float]] = {}  # per label set: bucket counts..., +Inf count, sum

    def observe(self, value: float, **labels: Any) -> None:
        row = self.series.setdefault(_labels(labels), [0.0] * (len(self.buckets) + 2))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                row[i] += 1
        row[-2] += 1
        row[-1] += value

    def count(self, **labels: Any) -> float:
        row = self.series.get(_labels(labels))
        return row[-2] if row else 0.0

    def samples(self) -> list[str]:
        out = []
        for key, row in sorted(self.series.items()):
            for bound, n in zip((*self.buckets, math.inf), row[:-1], strict=True):
                out.append(f"{self.name}_bucket{_fmt_labels(key, ('le', _num(bound)))} {_num(n)}")
            out.append(f"{self.name}_sum{_fmt_labels(key)} {_num(row[-1])}")
            out.append(f"{self.name}_count{_fmt_labels(key)} {_num(row[-2])}")
        return out


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}
        self.collectors: list[Callable[[], None]] = []  # refresh values kept elsewhere, before each scrape

    def _add(self, metric: Metric) -> Any:
        return self.metrics.setdefault(metric.name, metric)

    def counter(self, name: str, help: str) -> Counter:
        return self._add(Counter(name, help))

    def gauge(self, name: str, help: str) -> Gauge:
        return self._add(Gauge(name, help))

    def histogram(self, name: str, help: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        return self._add(Histogram(name, help, buckets))

    def render(self) -> str:
        for collect in self.collectors:
            collect()
        return "".join(m.render() for m in self.metrics.values())


class Metrics:
    """gymforge's metrics: events per role, handler latency, LLM calls, sandbox runs."""

    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry or Registry()
        self.handled = r.counter("gymforge_events_handled_total", "Events a role's handler finished")
        self.failed = r.counter("gymforge_events_failed_total", "Events whose handler raised, by error type")
        self.latency = r.histogram("gymforge_handler_seconds", "Handler time per event")
        self.dead = r.counter("gymforge_dead_letters_total", "Messages this process sent to dead letters")
        self.in_flight = r.gauge("gymforge_events_in_flight", "Events being handled now")
        self.llm_calls = r.counter("gymforge_llm_calls_total", "Model calls that answered")
        self.llm_tokens = r.counter("gymforge_llm_tokens_total", "Model tokens, by kind (prompt|completion)")
        self.llm_cost = r.counter("gymforge_llm_cost_usd_total", "Model cost in USD")
        self.llm_retries = r.counter("gymforge_llm_retries_total", "Model call retries")
        self.llm_latency = r.histogram("gymforge_llm_latency_seconds", "Model call time, retries included")
        self.sandbox_runs = r.counter("gymforge_sandbox_runs_total",
                                      "Sandbox commands by outcome (ok|error|timeout|oom|exception)")
        self.sandbox_latency = r.histogram("gymforge_sandbox_run_seconds", "Sandbox command time")
        self.up_since = r.gauge("gymforge_process_start_time_seconds", "When this process started (unix time)")
        self.up_since.set(time.time())

    def render(self) -> str:
        return self.registry.render()

    # --- hooks ----------------------------------------------------------------------------------

    def instrument(self, runners: Sequence[AgentRunner]) -> None:
        """Observe each runner from the outside; call before the runners start."""
        for runner in runners:
            self._wrap_handler(runner)
            agent, role = runner.agent, runner.agent.role
            llm = getattr(agent, "llm", None)
            if llm is not None and hasattr(llm, "on_usage"):
                llm.on_usage = self.usage_hook(llm.on_usage)
            backend = getattr(agent, "backend", None)
            if backend is not None and hasattr(backend, "open"):
                agent.backend = MeteredBackend(backend, self, role)  # type: ignore[attr-defined]
            self.registry.collectors.append(self._consumer_collector(runner))

    def _wrap_handler(self, runner: AgentRunner) -> None:
        consumer, role = runner.consumer, runner.agent.role
        inner = consumer.handler
        self.handled.inc(0, role=role)
        self.failed.inc(0, role=role, error="none")  # every role has a series from the start

        async def timed(event: Any) -> Any:
            started = time.perf_counter()
            try:
                out = await inner(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed.inc(role=role, error=type(exc).__name__)
                self.latency.observe(time.perf_counter() - started, role=role)
                raise
            self.latency.observe(time.perf_counter() - started, role=role)
            self.handled.inc(role=role)
            return out

        consumer.handler = timed

    def _consumer_collector(self, runner: AgentRunner) -> Callable[[], None]:
        role = runner.agent.role

        def collect() -> None:
            stats = getattr(runner.consumer, "stats", None)
            self.in_flight.set(getattr(stats, "in_flight", 0), role=role)
            self.dead.set_total(getattr(stats, "dead", 0), role=role)

        return collect

    def usage_hook(self, publish: Callable[[Usage], Any] | None) -> Callable[[Usage], Any]:
        async def observed(u: Usage) -> None:
            self.record_usage(u)
            if publish is not None:
                await publish(u)

        return observed

    def record_usage(self, u: Usage) -> None:
        labels = {"role": u.role, "model": u.model}
        self.llm_calls.inc(**labels)
        self.llm_tokens.inc(u.prompt_tokens, kind="prompt", **labels)
        self.llm_tokens.inc(u.completion_tokens, kind="completion", **labels)
        self.llm_cost.inc(u.cost_usd, **labels)
        self.llm_retries.inc(u.retries, **labels)
        self.llm_latency.observe(u.latency_s, **labels)

    def record_run(self, role: str, outcome: str, seconds: float) -> None:
        self.sandbox_runs.inc(role=role, outcome=outcome)
        self.sandbox_latency.observe(seconds, role=role)


def outcome_of(result: Any) -> str:
    if getattr(result, "timed_out", False):
        return "timeout"
    if getattr(result, "oom_killed", False):
        return "oom"
    return "ok" if getattr(result, "exit_code", 1) == 0 else "error"


class MeteredBackend:
    """A sandbox backend whose sessions count every exec; everything else goes to the real one."""

    def __init__(self, inner: Any, metrics: Metrics, role: str) -> None:
        self._inner, self._metrics, self._role = inner, metrics, role

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def open(self, *args: Any, **kwargs: Any) -> MeteredSession:
        return MeteredSession(await self._inner.open(*args, **kwargs), self._metrics, self._role)


class MeteredSession:
    def __init__(self, inner: Any, metrics: Metrics, role: str) -> None:
        self._inner, self._metrics, self._role = inner, metrics, role

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def exec(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await self._inner.exec(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._metrics.record_run(self._role, "exception", time.perf_counter() - started)
            raise
        self._metrics.record_run(self._role, outcome_of(result), time.perf_counter() - started)
        return result

    async def __aenter__(self) -> MeteredSession:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)

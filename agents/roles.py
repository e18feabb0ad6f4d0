"""The roles, in flow order: the one list of them. Everything else about a role — its name, what it
consumes and produces, whether it spends model budget, its settings — is read from its class."""

from __future__ import annotations

from agents.coder import CoderAgent
from agents.debugger import DebuggerAgent
from agents.filter import FilterAgent
from agents.proposer import ProposerAgent
from agents.runtime import Agent
from agents.sink import SinkAgent
from agents.solver.agent import SolverAgent
from agents.verifier import VerifierAgent

ROLE_CLASSES: tuple[type[Agent], ...] = (
    ProposerAgent, VerifierAgent, CoderAgent, DebuggerAgent, SolverAgent, FilterAgent, SinkAgent,
)
ROLES: dict[str, type[Agent]] = {cls.role: cls for cls in ROLE_CLASSES}
MODEL_ROLES = frozenset(name for name, cls in ROLES.items() if cls.spends_budget)


def consumed_by_workers() -> frozenset[str]:
    """Event types some role other than the sink consumes (that role dead-letters them when invalid)."""
    return frozenset(p.event_type for cls in ROLE_CLASSES if not cls.consumes_everything for p in cls.consumes)

"""`gymforge check-model [--role R] [--json]`: a preflight of the model endpoints. Per model role, real
requests through its configured endpoint, model and request options (agents/check.py); a line per role.
Exit 0 when every role checked can work, 1 when one cannot, 2 for bad input. With no endpoint set the
offline teacher is started, as `run` does."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import replace

from agents.roles import MODEL_ROLES, ROLES
from gymforge.app import ensure_teacher, models, with_settings
from gymforge.config import Settings

CHECK_RETRIES = 1  # a preflight: one retry of a 429/5xx/timeout, not the pipeline's patience


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-model", help="one real request per model role: reachable, model, latency, reply "
                       "parsed, reasoning, tool calls, structured output")
    p.add_argument("--role", choices=[r for r in ROLES if r in MODEL_ROLES], default=None,
                   help="only this role (default: every role that calls a model)")
    p.add_argument("--json", action="store_true", help="one JSON object per role, in a list")
    p.set_defaults(func=with_settings(cmd_check_model))


async def check(s: Settings, roles: list[str]) -> list:
    from agents.check import check_role
    from agents.llm_agent import role_llm

    teacher = await ensure_teacher(s)
    try:
        m = models(s)
        m = replace(m, teacher=replace(m.teacher, max_retries=min(m.teacher.max_retries, CHECK_RETRIES)),
                    solver=replace(m.solver, max_retries=min(m.solver.max_retries, CHECK_RETRIES)))
        llms = {r: role_llm(r, ROLES[r].model_kind, m, s.role(r)) for r in roles}  # type: ignore[attr-defined]
        try:
            return list(await asyncio.gather(*(
                check_role(r, llms[r], action_format=action_format(s, r),
                           structured=getattr(s.role(r), "structured_output", "off"))
                for r in roles)))
        finally:
            await asyncio.gather(*(llm.close() for llm in llms.values()))
    finally:
        if teacher:
            await teacher.stop()


def action_format(s: Settings, role: str) -> str:
    """How the role's replies carry a command (the solver's): thought_action, tool_call, or discussion (MLGym's
    interface: a DISCUSSION and one command block, never a tool call)."""
    settings = s.role(role)
    if getattr(settings, "interface", "bash") == "mlgym":
        return "discussion"
    return getattr(settings, "action_format", "thought_action")


def cmd_check_model(args: argparse.Namespace, s: Settings) -> int:
    roles = [args.role] if args.role else [r for r in ROLES if r in MODEL_ROLES]
    results = asyncio.run(check(s, roles))
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            print(r.line())
    return 0 if all(r.ok for r in results) else 1

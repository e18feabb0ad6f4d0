"""The offline teacher's answer to `gymforge check-model`'s probes (purpose `check_model`,
domain.model_api.PROBE_PURPOSE): the reply each role's probe asks for (prompts/check_model.j2 names the
role on its first line), as JSON of the requested schema when the request has a json_schema
`response_format`. Rules, like the rest of the teacher: not a model."""

from __future__ import annotations

import json
import re
from typing import Any

PROBE_ROLE = re.compile(r"gymforge check-model probe: role=(\w+)")

TOPIC = {"title": "Classify iris species from flower measurements",
         "description": "Predict the species of an iris flower from its sepal and petal measurements.",
         "task_type": "tabular_classification",
         "candidate_datasets": [{"id": "iris", "source": "builtin",
                                 "input_columns": ["sepal_length_cm", "sepal_width_cm", "petal_length_cm",
                                                   "petal_width_cm"], "label_column": "species"}]}
META = {"name": "probe", "metric": "accuracy", "direction": "maximize", "training_timeout": 60,
        "description": "A placeholder task of the preflight check.\nSUBMISSION FORMAT: id,label",
        "dataset_description": ""}
FILES = {"prepare.py": 'print("ok")\n', "baseline.py": 'print("ok")\n', "evaluate.py": 'print("{}")\n',
         "sample_submission.csv": "id,label\n"}


def probe_reply(messages: list[dict[str, Any]], response_format: dict[str, Any] | None) -> str:
    """The reply text (the server turns a command block into a `bash` tool call when the tool is offered)."""
    text = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    found = PROBE_ROLE.search(text)
    role = found.group(1) if found else ""
    schema = ((response_format or {}).get("json_schema") or {}).get("name")
    if schema == "topics":
        return json.dumps({"topics": [TOPIC]})
    if schema == "task_bundle":
        return json.dumps({**META, "files": FILES})
    if role == "proposer":
        return f"```json\n{json.dumps([TOPIC], indent=2)}\n```\n"
    if role == "coder":
        blocks = "".join(f"FILE: {name}\n```\n{body}```\n\n" for name, body in FILES.items())
        return f"```json\n{json.dumps(META, indent=2)}\n```\n\n{blocks}"
    if role == "debugger":
        return ("EXPLANATION: the dict literal was closed with a parenthesis; close it with a brace.\n\n"
                'FILE: evaluate.py\n```python\nprint({"accuracy": 1.0})\n```\n')
    if "Reply with a line `DISCUSSION`" in text:  # MLGym's format
        return "DISCUSSION\nThe probe asks me to run `echo ok`.\n\n```\necho ok\n```\n"
    return "THOUGHT: the probe asks me to run `echo ok`.\n\n```bash\necho ok\n```\n"

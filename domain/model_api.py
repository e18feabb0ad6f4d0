"""What gymforge sends a model endpoint beyond the chat API, shared by the client (agents/llm.py) and the
offline teacher (teacher/): the header naming a request's purpose, and the stand-in's model id."""

PURPOSE_HEADER = "X-Gymforge-Purpose"
TEACHER_MODEL = "offline-teacher-rule-based"
PROBE_PURPOSE = "check_model"  # `gymforge check-model`'s requests (the offline teacher: teacher/probe.py)

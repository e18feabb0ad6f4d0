"""The trajectory of one solver episode (SWE-agent's .traj shape). Typed in a following change."""

from typing import Any

Trajectory = dict[str, Any]

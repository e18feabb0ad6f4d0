"""The solver: one `solve.requested` -> one agent episode in the task's sandbox -> `trajectory.completed`.

- loop.py: the episode loop (model -> action -> sandbox -> observation), its limits and exit statuses;
- interface.py: the bash interface (the reply format, the observations' text); mlgym.py: MLGym's agent
  interface, whose file viewer and editor (mlgym_tools.py) run inside the sandbox;
- actions.py: parsing a reply into one action, and shaping observations (pure);
- environment.py: the task workspace as the loop's Environment (`validate`/`submit` score it);
- record.py: the trajectory in SWE-agent's `.traj` shape;
- agent.py: the bus role.
"""

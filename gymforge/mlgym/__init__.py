"""`gymforge export mlgym --out DIR`: validated tasks as a tree MLGym can load.

DIR mirrors the root of an MLGym checkout (MLGym resolves these paths against its repository root):

    configs/tasks/<task_id>.yaml      the task config (MLGym's TaskConfig fields, plus a `gymforge:` block)
    configs/datasets/<task_id>.yaml   the dataset config (data_path, is_local, train/test splits)
    data/<task_id>/                   the bundle's files (baseline.py, evaluate.py, prepare.py, ...) and the
                                      sample_submission.csv that prepare.py wrote
    data/<task_id>/data/              the prepared workspace data (train.csv, test.csv without labels,
                                      README); MLGym copies this dir into the agent's workspace as data/
    data/<task_id>/answers/           the hidden test answers (answers.csv). evaluate.py reads them from
                                      $GF_HIDDEN_DIR, else from /answers (MLGym's `container_mounts`)
    data/<task_id>/requirements.txt   only for a task needing more than MLGym's generic environment
    mlgym_tasks.py                    the tasks' entries for MLGym's TASKS dict (priority metric, direction)
    README.md                         the tasks, their metric, direction and baseline, and how to run them

Only tasks whose status is `validated` or `graded` are exported, one at a time: each task's data is
prepared by running its prepare.py in the sandbox on its dataset (from the local cache, else the object
store), exactly as the debugger did when it validated the task; then its baseline is scored the way MLGym
scores it, and a task MLGym could not score is skipped with the reason. Path fields follow MLGym's own semantics:
`starter_code`, `sample_submission` and a dataset's `data_path` are relative to the MLGym root;
`dataset_configs` to `configs/`; `baseline_paths` and `evaluation_paths` to the agent's workspace (into
which MLGym copies the starter code flat), so they are plain `baseline.py` / `evaluate.py`.

The modules, by job: `command` (the CLI command and the export loop), `records` (the tasks as read from the
store), `datasets` (the raw data: cache first), `rerun` (prepare.py re-run in the sandbox), `scoring` (the
baseline scored as MLGym scores it), `requirements` (generic environment or a requirements.txt), `layout`
(the files and YAML configs under DIR) and `readme` (README.md, from the template README.md.j2, and
mlgym_tasks.py). The names other export formats share are
re-exported here.
"""

from __future__ import annotations

from gymforge.mlgym.command import check_out_dir, export_mlgym, export_subparsers, one_line, register
from gymforge.mlgym.layout import check_name, mlgym_description
from gymforge.mlgym.records import TaskUnusable

__all__ = ["TaskUnusable", "check_name", "check_out_dir", "export_mlgym", "export_subparsers", "mlgym_description",
           "one_line", "register"]

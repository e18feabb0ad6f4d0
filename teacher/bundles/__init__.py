"""The offline teacher's task-bundle policy: pure functions, no I/O (rule-based, not a model).

- write_bundle(card, task_id=..., defect=None) -> BundleDraft: render prepare.py, baseline.py,
  evaluate.py and sample_submission.csv for a dataset card, optionally with a planted defect.
- fix_bundle(files, error, card) -> (files, explanation): repair a bundle from an error's text.
- candidate_edits(files, task_type) -> [Edit]: improvements to baseline.py as shell commands.
"""

from teacher.bundles.card import CardError, read_card
from teacher.bundles.defects import DEFECTS
from teacher.bundles.draft import BundleDraft, write_bundle
from teacher.bundles.edits import Edit, candidate_edits
from teacher.bundles.fix import fix_bundle

__all__ = [
    "DEFECTS",
    "BundleDraft",
    "CardError",
    "Edit",
    "candidate_edits",
    "fix_bundle",
    "read_card",
    "write_bundle",
]

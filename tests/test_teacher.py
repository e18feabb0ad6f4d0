"""The offline teacher's rule-based policy on the real prompts: proposals, a task draft the coder's parser
accepts (with a planted defect when asked), and a fix driven by the error text; plus the reply parsing it
relies on."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agents.coder import coder_system, parse_bundle
from agents.debugger import parse_fix
from agents.proposer import ProposerAgent, parse_topics
from agents.replies import ReplyError, files
from catalog import LocalCatalog, build_builtin
from domain.payloads import TopicProposed
from domain.tasks import TASK_TYPES
from prompts import render
from sandbox.runtimes import get_runtime
from teacher.bundles import write_bundle
from teacher.policy import DEFECTS, PolicyError, TeacherConfig, answer, defect_for, domain_types

CATALOG_NAMES = ["iris", "diabetes"]
_BUILT: dict[str, Path] = {}


def built_catalog(factory: pytest.TempPathFactory) -> Path:
    """The built-in iris and diabetes datasets, built once per test session (shared with test_llm)."""
    if "root" not in _BUILT:
        root = factory.mktemp("catalog")
        build_builtin(root, names=CATALOG_NAMES)
        _BUILT["root"] = root
    return _BUILT["root"]


@pytest.fixture(scope="session")
def catalog_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_catalog(tmp_path_factory)


def catalog_summary(root: Path) -> list[dict[str, Any]]:
    """What the proposer puts in its prompt (its own code, on this catalog)."""
    return ProposerAgent.catalog_summary(SimpleNamespace(catalog=LocalCatalog(root)))  # type: ignore[arg-type]


def propose_messages(root: Path, *, domain: str = "tabular data", count: int = 4, exclude: list[str] | None = None,
                     topic: str | None = None, difficulty: str = "medium") -> list[dict[str, str]]:
    prompt = render("propose_topics", domain=domain, count=count, difficulty=difficulty, catalog=catalog_summary(root),
                    exclude=exclude or [], task_types=list(TASK_TYPES), hints=[], topic=topic, task_type=None)
    return [{"role": "system", "content": render("propose_system")}, {"role": "user", "content": prompt}]


def iris_card(root: Path) -> dict[str, Any]:
    return json.loads((root / "iris" / "card.json").read_text())


def write_messages(card: dict[str, Any], task_id: str) -> list[dict[str, str]]:
    topic = TopicProposed(title="Classify species on iris", domain="botany",
                          description="Predict the species of an iris flower from its four measurements.")
    runtime = get_runtime("sklearn")
    return [{"role": "system", "content": coder_system(runtime)},
            {"role": "user", "content": render("write_task", topic=topic, card=card, task_id=task_id, runtime=runtime)}]


def task_id_with(defect: str) -> str:
    return next(t for t in (f"iris-{i:08x}" for i in range(1000)) if defect_for(t, 1.0) == defect)


def string_literals(source: str) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


# --- proposals ---------------------------------------------------------------------------------------------


def test_propose_answers_the_real_prompt_with_distinct_grounded_topics(catalog_root: Path) -> None:
    text = answer("propose_topics", propose_messages(catalog_root, count=5), TeacherConfig())
    topics = parse_topics(text)
    assert len(topics) == 5
    assert len({t.title for t in topics}) == 5
    ids = {d["id"]: d for d in catalog_summary(catalog_root)}
    for t in topics:
        candidate = t.candidate_datasets[0]  # iris and diabetes differ in task type: no second candidate
        assert len(t.candidate_datasets) == 1
        assert candidate.id in ids and t.task_type == ids[candidate.id]["task_type"]
    assert answer("propose_topics", propose_messages(catalog_root, count=5), TeacherConfig()) == text

    # titles already proposed are not proposed again, and the count still holds
    excluded = [t.title for t in topics[:2]]
    again = parse_topics(answer("propose_topics", propose_messages(catalog_root, count=5, exclude=excluded),
                                TeacherConfig()))
    assert len(again) == 5 and not {t.title for t in again} & set(excluded)


def test_propose_keeps_to_the_domains_task_types(catalog_root: Path) -> None:
    # diabetes is regression, iris classification: a "tabular" domain may use both
    both = parse_topics(answer("propose_topics", propose_messages(catalog_root, count=4), TeacherConfig()))
    assert {t.task_type for t in both} == {"tabular_classification", "tabular_regression"}


@pytest.mark.parametrize(("domain", "types"), [
    ("sentiment analysis", ("text_classification",)),  # "time" is inside "sentiment": not forecasting
    ("context-aware economics", ("time_series_forecasting", "count_regression")),  # "text" is inside "context"
    ("time series", ("time_series_forecasting", "time_series_classification")),
    ("computer vision", ("image_classification",)),
    ("natural language processing", ("text_classification",)),
    ("healthcare", ("tabular_classification", "tabular_regression", "count_regression")),
    ("wearable sensor signals", ("time_series_classification",)),
    ("knitting", ()),
])
def test_domain_keywords_match_whole_word_starts(domain: str, types: tuple[str, ...]) -> None:
    assert domain_types(domain) == types


def knowledge() -> tuple[dict[str, Any], ...]:
    """What a teacher "knows" of the Hub, in the shape the mirror's index gives it (hubmirror.index.knowledge)."""
    rows = []
    for domain, task_type, names in [
        ("health", "tabular_classification", ["heart", "diabetes_pima", "stroke", "hepatitis"]),
        ("health", "tabular_regression", ["hospital_costs", "insurance"]),
        ("economics", "tabular_regression", ["wages", "house_prices", "car_prices"]),
        ("time series", "time_series_forecasting", ["airpassengers", "nile", "lynx", "sunspots_monthly"]),
        ("vision", "image_classification", ["digits_8x8"]),
    ]:
        rows += [{"id": f"acme/{n}", "source": "hub", "task_type": task_type, "label_column": "y",
                  "input_columns": ["a", "b"], "domain": domain, "pretty_name": n.replace("_", " "),
                  "description": f"The {n.replace('_', ' ')} data.", "num_rows": 500 + 1000 * i}
                 for i, n in enumerate(names)]
    return tuple(rows)


def test_propose_samples_its_knowledge_by_domain_every_dataset_before_any_twice(catalog_root: Path) -> None:
    config = TeacherConfig(knowledge=knowledge())
    health = {d["id"] for d in knowledge() if d["domain"] == "health"}
    proposed: list[TopicProposed] = []
    for _ in range(3):  # three requests in the domain, each excluding what the ones before proposed
        messages = propose_messages(catalog_root, domain="healthcare", count=2, exclude=[t.title for t in proposed])
        proposed += parse_topics(answer("propose_topics", messages, config))
    firsts = [t.candidate_datasets[0].id for t in proposed]
    assert set(firsts) <= health and len(set(firsts)) == 6  # six distinct health datasets, none of another domain
    for t in proposed:  # a second candidate of the same task type, should the first fail verification
        first, second = t.candidate_datasets
        types = {d["id"]: d["task_type"] for d in knowledge()}
        assert first.source == second.source == "hub" and types[first.id] == types[second.id] == t.task_type
    # the built-ins the prompt shows are not proposed by a teacher that knows the Hub
    assert not {c.id for t in proposed for c in t.candidate_datasets} & set(CATALOG_NAMES)
    # the difficulty steers the choice: easy topics go to small datasets (<= 2,000 rows) first, hard to large
    def first_pick(difficulty: str) -> str:
        messages = propose_messages(catalog_root, domain="economics", count=1, difficulty=difficulty)
        return parse_topics(answer("propose_topics", messages, config))[0].candidate_datasets[0].id

    assert first_pick("easy") in {"acme/wages", "acme/house_prices"}  # 500 and 1,500 rows
    assert first_pick("hard") == "acme/car_prices"  # 2,500 rows
    forecasts = parse_topics(answer("propose_topics", propose_messages(catalog_root, domain="time series", count=4),
                                    config))
    assert {t.task_type for t in forecasts} == {"time_series_forecasting"}


def test_a_given_topic_gets_the_best_matching_datasets_as_candidates(catalog_root: Path) -> None:
    messages = propose_messages(catalog_root, domain="general", count=1, topic="Predict hospital costs of patients")
    (topic,) = parse_topics(answer("propose_topics", messages, TeacherConfig(knowledge=knowledge())))
    assert topic.title == "Predict hospital costs of patients"
    assert topic.candidate_datasets[0].id == "acme/hospital_costs" and len(topic.candidate_datasets) == 3


def test_unknown_purpose_and_missing_context_are_policy_errors(catalog_root: Path) -> None:
    with pytest.raises(PolicyError, match="no policy"):
        answer("summarise", [{"role": "user", "content": "hi"}], TeacherConfig())
    with pytest.raises(PolicyError, match="JSON blocks"):
        answer("propose_topics", [{"role": "user", "content": "propose something"}], TeacherConfig())
    with pytest.raises(PolicyError, match="the error, the card and the files"):
        answer("fix_task", [{"role": "user", "content": "fix it"}], TeacherConfig())


# --- write_task and fix_task -------------------------------------------------------------------------------


def test_defect_rate_decides_whether_a_draft_carries_a_defect() -> None:
    ids = [f"t-{i}" for i in range(300)]
    assert all(defect_for(t, 0.0) is None for t in ids)
    assert {defect_for(t, 1.0) for t in ids} == set(DEFECTS)
    some = sum(defect_for(t, 0.5) is not None for t in ids)
    assert 90 < some < 210


def test_write_task_reply_parses_as_a_bundle(catalog_root: Path) -> None:
    card, task_id = iris_card(catalog_root), "iris-clean01"
    text = answer("write_task", write_messages(card, task_id), TeacherConfig(defect_rate=0.0))
    meta, written = parse_bundle(text)
    clean = write_bundle(card, task_id=task_id)
    assert written == clean.files
    assert (meta.name, meta.metric, meta.direction) == (clean.name, clean.metric, clean.direction)
    assert "{dataset_docs}" in meta.description and "SUBMISSION FORMAT" in meta.description


def test_write_task_plants_a_wrong_column_and_fix_task_repairs_it_from_the_key_error(catalog_root: Path) -> None:
    card, task_id = iris_card(catalog_root), task_id_with("wrong_column")
    draft = parse_bundle(answer("write_task", write_messages(card, task_id), TeacherConfig(defect_rate=1.0)))[1]
    clean = write_bundle(card, task_id=task_id).files
    broken = [name for name in clean if draft[name] != clean[name]]
    assert len(broken) == 1, broken
    (name,) = broken
    columns = [*card["features"], "id"]
    (typo,) = string_literals(draft[name]) - string_literals(clean[name])
    (meant,) = string_literals(clean[name]) - string_literals(draft[name])
    assert typo not in columns and meant in columns

    error = (f'Traceback (most recent call last):\n  File "/workspace/{name}", line 20, in <module>\n'
             f'    frame = frame[FEATURES + [LABEL]]\n'
             f'KeyError: "[\'{typo}\'] not in index"')
    prompt = render("fix_task", round=1, max_rounds=3, error=error, card=card, files=draft)
    reply = answer("fix_task", [{"role": "user", "content": prompt}], TeacherConfig(defect_rate=1.0))
    changed, why = parse_fix(reply, draft)
    assert why.startswith("KeyError") and typo in why and meant in why
    assert changed == {name: clean[name]}


def test_fix_task_without_a_rule_explains_and_changes_nothing_which_is_no_fix(catalog_root: Path) -> None:
    card = iris_card(catalog_root)
    draft = write_bundle(card, task_id="iris-clean01").files
    prompt = render("fix_task", round=1, max_rounds=3, error="ZeroDivisionError: division by zero", card=card,
                    files=draft)
    reply = answer("fix_task", [{"role": "user", "content": prompt}], TeacherConfig())
    assert reply.startswith("EXPLANATION: could not fix")
    with pytest.raises(ReplyError, match="changes no file"):  # an empty change is refused, not applied
        parse_fix(reply, draft)


# --- reply parsing -----------------------------------------------------------------------------------------


def test_file_blocks_end_at_a_fence_on_its_own_line() -> None:
    text = ('FILE: a.py\n```python\nFENCE = "```"\nprint(FENCE)\n```\n'
            "FILE: b.py\n```\nx = 1\n```\n")
    assert files(text) == {"a.py": 'FENCE = "```"\nprint(FENCE)\n', "b.py": "x = 1\n"}
    with pytest.raises(ReplyError, match="relative path"):
        files("FILE: ../escape.py\n```\nx = 1\n```\n")

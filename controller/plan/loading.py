"""Reading a plan: YAML with positions and `${VAR}`, the models, the whole-plan checks,
and every problem reported at once with its file:line:col."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gray.controller.errors import PlanError, PlanProblem
from gray.controller.plan.checks import semantic_problems
from gray.controller.plan.models import HOOK_KINDS, Plan
from gray.controller.plan.problems import describe_validation_error
from gray.controller.plan.source import MAX_PLAN_BYTES, PlanSource, read_plan_source
from gray.controller.plan.units import format_share, parse_share
from gray.controller.redact import register_secret


def parse_plan(text: str, filename: str = "<plan>", environ: dict[str, str] | None = None) -> Plan:
    """Parse and check a plan; raise PlanError listing every problem found."""

    source = read_plan_source(text, environ)
    problems = [
        PlanProblem(filename, p.line, p.column, _field_path(p.path), p.message)
        for p in source.problems
    ]
    if source.data is None:
        raise PlanError(filename, problems)
    if not isinstance(source.data, dict):
        line, column = source.position(())
        problems.append(
            PlanProblem(filename, line, column, "", "expected a mapping of plan fields at the top")
        )
        raise PlanError(filename, problems)
    try:
        plan = Plan.model_validate(_default_stage_names(source.data))
    except ValidationError as exc:
        problems.extend(describe_validation_error(exc, source, filename, Plan))
        raise PlanError(filename, _hidden(_sorted(problems), source)) from None
    for path, message in semantic_problems(plan):
        line, column = source.position(path)
        problems.append(PlanProblem(filename, line, column, _field_path(path), message))
    if problems:
        raise PlanError(filename, _hidden(_sorted(problems), source))
    hooks = [plan.hooks.get(kind) for kind in HOOK_KINDS]
    for secret in (
        *plan.router.secrets(),
        *plan.metrics.secrets(),
        *(n.url for n in plan.notify),
        *(n.routing_key for n in plan.notify),
        *(value for n in plan.notify for value in n.headers.values()),
        *(h.url for h in hooks if h),
        *(value for h in hooks if h for value in h.headers.values()),
    ):
        register_secret(secret)  # masked in every message this process makes from now on
    return plan


def load_plan(path: str | Path, environ: dict[str, str] | None = None) -> Plan:
    name = str(path)
    try:
        with Path(path).open("rb") as file:
            # Never more than the cap plus one byte: `/dev/zero` or a 4 GB file is refused
            # at once instead of read into memory.
            data = file.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PlanError(name, [PlanProblem(name, None, None, "", reason)]) from None
    if len(data) > MAX_PLAN_BYTES:
        message = f"the file is larger than {MAX_PLAN_BYTES // 1024} KB; a plan is a page of YAML"
        raise PlanError(name, [PlanProblem(name, 1, 1, "", message)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start].decode("utf-8")) + 1
        message = f"not UTF-8 text: byte 0x{data[exc.start]:02x} is not valid here"
        raise PlanError(name, [PlanProblem(name, line, column, "", message)]) from None
    return parse_plan(text, name, environ)


def _field_path(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _hidden(problems: list[PlanProblem], source: PlanSource) -> list[PlanProblem]:
    """The problems with every value taken from the environment shown as its `${NAME}`."""
    return [
        PlanProblem(p.file, p.line, p.column, p.field, source.hide_substituted(p.message))
        for p in problems
    ]


def _sorted(problems: list[PlanProblem]) -> list[PlanProblem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def _default_stage_names(data: Any) -> Any:
    """Stages may leave out `name`: `shadow`, `5%`, ... (made unique with a suffix)."""
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
        return data
    seen: set[str] = set()
    stages = []
    for number, stage in enumerate(data["stages"], start=1):
        if isinstance(stage, dict) and "name" not in stage:
            name = _stage_default_name(stage, number)
            candidate, suffix = name, 2
            while candidate in seen:
                candidate, suffix = f"{name}-{suffix}", suffix + 1
            stage = {**stage, "name": candidate}
        if isinstance(stage, dict) and isinstance(stage.get("name"), str):
            seen.add(stage["name"])
        stages.append(stage)
    return {**data, "stages": stages}


def _stage_default_name(stage: dict[str, Any], number: int) -> str:
    try:
        weight = parse_share(stage.get("weight", 0))
        mirror = parse_share(stage.get("mirror", 0))
    except ValueError:
        return f"stage-{number}"
    if weight == 0 and mirror > 0:
        return "shadow"
    if weight > 0:
        return format_share(weight)
    return f"stage-{number}"

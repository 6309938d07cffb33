"""`gray demo`: the whole story on this machine, in one command."""

from __future__ import annotations

import os
import secrets
import time
from enum import StrEnum
from pathlib import Path

import typer
from rich.panel import Panel

from gray.cli.output import OutputFormat, console, reported_errors, version_label

# The bad candidate for each demo defect: its alias in the demo registry and what is wrong.
DEFECTS = {
    "raises": ("bad-raises", "raises on inputs outside its training range (about a quarter)"),
    "slow": ("bad-slow", "answers correctly but several times slower"),
    "preprocessor": ("bad-preprocessor", "was registered with the wrong preprocessor"),
}


class Scenario(StrEnum):
    bad = "bad"
    good = "good"
    both = "both"


class Defect(StrEnum):
    raises = "raises"
    slow = "slow"
    preprocessor = "preprocessor"


def demo(
    scenario: Scenario = typer.Option(Scenario.both, "--scenario", help="bad, good or both."),
    defect: Defect = typer.Option(
        Defect.raises, "--defect", help="What is wrong with the bad candidate."
    ),
    workdir: Path = typer.Option(
        Path("gray-demo"), "--workdir", help="Where the registry and logs go."
    ),
    rps: float = typer.Option(
        80.0, "--rps", help="Requests per second the traffic generator sends."
    ),
    quick: bool = typer.Option(False, "--quick", help="Shortest stages (what the tests run)."),
) -> None:
    """Train models, start a gateway and traffic, and roll out a bad then a good candidate.

    Everything runs on 127.0.0.1 and stops when the demo ends (also on Ctrl-C);
    the working folder stays for inspection: the MLflow registry with the
    rollout runs, the plans, the gateway's prediction log.

    Exit codes: 0 when every scenario ended as expected (bad rolled back, good
    promoted), 1 otherwise.

    Examples:

    \b
      gray demo
      gray demo --scenario bad --defect slow
      gray demo --workdir /tmp/demo --quick
    """
    with reported_errors(OutputFormat.text):
        from gray.controller.extras import require_extra

        require_extra("all", "gray demo")
        ok = run_demo(scenario, defect, workdir, rps, "quick" if quick else "normal")
    raise typer.Exit(0 if ok else 1)


def run_demo(scenario: Scenario, defect: Defect, workdir: Path, rps: float, timings: str) -> bool:
    from gray.demo.models import demo_dataset
    from gray.demo.plans import demo_plan_text
    from gray.demo.traffic import TrafficGenerator
    from gray.gateway.testing import start_gateway

    workdir = workdir.resolve()
    if (workdir / "mlflow.db").exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        workdir = workdir.with_name(f"{workdir.name}-{stamp}")
    workdir.mkdir(parents=True, exist_ok=True)
    registry_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    model = "fraud"
    bad_alias, bad_story = DEFECTS[defect.value]
    console.rule("[bold]gray demo")
    console.print(f"working folder: {workdir}")
    started = time.time()
    versions = _register_models(registry_uri, model, defect)

    token = secrets.token_urlsafe(16)
    os.environ["GRAY_GATEWAY_TOKEN"] = token
    features, labels = demo_dataset()
    outcomes: list[tuple[str, int, int]] = []
    with console.status("starting the gateway on 127.0.0.1 (loading the champion)…"):
        gateway = start_gateway(
            registry_uri, model, workdir / "gateway", token=token, slo_edges=(0.05,)
        )
    try:
        console.print(f"[green]✓[/] gateway at {gateway.url} serving v{versions['baseline']}")
        with TrafficGenerator(gateway.url, token, features, labels, rps=rps) as traffic:
            console.print(
                f"[green]✓[/] traffic: {rps:g} requests/s from 5,000 user ids; labels posted back "
                "to /feedback after 1 s"
            )
            time.sleep(2.0)
            runs = []
            if scenario in (Scenario.bad, Scenario.both):
                runs.append(("bad", bad_alias, f"a bad candidate that {bad_story}", 1))
            if scenario in (Scenario.good, Scenario.both):
                runs.append(("good", "challenger", "a better candidate", 0))
            for name, alias, title, expected in runs:
                plan_text = demo_plan_text(
                    scenario=name,
                    title=title,
                    file=str(workdir / f"plan-{name}.yaml"),
                    model=model,
                    candidate_alias=alias,
                    registry_uri=registry_uri,
                    gateway_url=gateway.url,
                    timings=timings,
                )
                code, rollout_id = _demo_rollout(workdir, name, title, plan_text)
                outcomes.append((rollout_id, code, expected))
            counts = traffic.counts
    finally:
        gateway.stop()
    _summary(workdir, registry_uri, model, outcomes, counts, time.time() - started)
    return all(code == expected for _, code, expected in outcomes)


def _register_models(registry_uri: str, model: str, defect: Defect) -> dict[str, str]:
    """The baseline, a better candidate and one with `defect`, with their aliases; the
    version of each role."""
    from gray.demo.models import register_demo_models

    bad_alias, bad_story = DEFECTS[defect.value]
    roles = [
        "baseline",
        "good",
        {"raises": "bad_raises", "slow": "bad_slow"}.get(defect.value, "bad_preprocessor"),
    ]
    with console.status("training scikit-learn models and registering them in MLflow…"):
        versions = register_demo_models(registry_uri, model, which=roles)
    console.print(
        f"[green]✓[/] registered {model}: v{versions['baseline']} @champion (baseline), "
        f"v{versions['good']} @challenger (better), v{versions[roles[2]]} @{bad_alias} "
        f"({bad_story}); preprocessors bound by sha256"
    )
    return versions


def _demo_rollout(workdir: Path, name: str, title: str, plan_text: str) -> tuple[int, str]:
    """One rollout of the demo, as `gray rollout start` runs it: its exit code and id."""
    from gray.cli.rollout import start_rollout

    plan_file = workdir / f"plan-{name}.yaml"
    plan_file.write_text(plan_text)
    console.rule(f"[bold]{name} candidate: {title}")
    result = start_rollout(plan_file, False, None, False, None, None, OutputFormat.text)
    assert result is not None
    time.sleep(1.0)
    return result.exit_code, result.state.rollout_id


def _summary(
    workdir: Path, registry_uri: str, model: str, outcomes, counts, seconds: float
) -> None:  # type: ignore[no-untyped-def]
    from gray.controller.registry import Registry

    console.rule("[bold]what happened")
    for rollout_id, code, expected in outcomes:
        verdict = {0: "promoted", 1: "rolled back", 3: "held"}.get(code, f"exit {code}")
        mark = "[green]✓[/]" if code == expected else "[red]✗[/]"
        console.print(f"{mark} {rollout_id}: {verdict}")
    served = ", ".join(f"v{v}: {n:,}" for v, n in sorted(counts.by_version.items()))
    console.print(
        f"requests answered: {served}; "
        f"server errors seen by clients: {sum(counts.errors.values()):,}"
    )
    history = Registry(registry_uri).history(model)
    if history:
        console.print("alias history (gray registry history):")
        for move in history[-4:]:
            console.print(
                f"  {move.at}  @{move.alias}: "
                f"{version_label(move.from_version)} → {version_label(move.to_version)}"
                f"  ({move.rollout_id or move.reason})"
            )
    ids = [o[0] for o in outcomes]
    console.print(
        Panel(
            "\n".join(
                [f"gray rollout status {i}" for i in ids]
                + [
                    f"gray rollout report {i} --prediction-log {workdir / 'gateway'} --open"
                    for i in ids
                ]
                + [
                    f"gray registry history {model} --registry-uri {registry_uri}",
                    f"gray registry show {model} --registry-uri {registry_uri}",
                    f"mlflow ui --backend-store-uri {registry_uri}   # experiment gray-rollouts",
                    f"ls {workdir / 'gateway'}   # the gateway's log and prediction log",
                ]
            ),
            title=f"look further (demo took {seconds:.0f} s; everything it started is stopped)",
            title_align="left",
        )
    )

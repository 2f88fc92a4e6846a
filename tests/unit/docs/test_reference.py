"""The documents stay true to the program: every flag and every RescuePolicy field is in the
README's reference, every `rescue` command the documents show parses, every link leads to a
file, the runbook keeps PROCESS.md's template, and docs/openapi.json is what the webhook
generates.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rescue import cli

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "deploy" / "examples" / "README.md",
    ROOT / "deploy" / "monitoring" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _flags(parser: argparse.ArgumentParser) -> list[list[str]]:
    return [
        list(action.option_strings)
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _reference_blocks() -> dict[str, str]:
    """The reference's blocks by the commands their headings name ("" for the shared ones)."""
    blocks: dict[str, str] = {}
    for block in _section(README, "Configuration reference").split("\n#### ")[1:]:
        heading = block.splitlines()[0]
        named = re.findall(r"`rescue ([a-z ]+)`", heading)
        for command in named or [""]:
            blocks[command] = blocks.get(command, "") + block
    return blocks


def _mentions(text: str, flag: str) -> bool:
    return re.search(rf"`{re.escape(flag)}[ `=,]", text) is not None


def test_every_flag_of_every_command_is_in_the_readme_reference() -> None:
    blocks = _reference_blocks()
    shared = blocks[""]
    missing = []
    for path, parser in _commands(cli.build_parser()):
        command = " ".join(path)
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions) and path:
            continue  # `rescue cluster` only groups `up` and `down`
        if path:
            assert command in blocks, f"no heading names `rescue {command}`"
        for options in _flags(parser):
            wanted = [o for o in options if o.startswith("--")] or options
            where = blocks.get(command, "") + shared
            if not all(_mentions(where, option) for option in wanted):
                missing.append(f"rescue {command} {'/'.join(options)}".replace("  ", " "))
    assert not missing, "flags missing from the README's Configuration reference: " + ", ".join(
        missing
    )


def _schema_paths(schema: dict[str, Any], prefix: str) -> Iterator[str]:
    properties = schema.get("properties")
    if not properties:
        yield prefix
        return
    for name, child in properties.items():
        yield from _schema_paths(child, f"{prefix}.{name}")


def test_every_rescuepolicy_field_is_in_the_readme() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "rescuepolicies.alc.hecate.dev.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    paths = list(_schema_paths(spec, "spec"))
    assert "spec.mitigation.scale.factor" in paths
    section = _section(README, "RescuePolicy")
    missing = [path for path in paths if f"`{path}`" not in section]
    assert not missing, f"RescuePolicy fields missing from the README: {missing}"


def _shell_lines(text: str) -> Iterator[str]:
    """The commands of the ```sh blocks, continuation lines joined, comments dropped."""
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        pending = ""
        for raw in block.splitlines():
            line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, ""
            if line.strip():
                yield line.strip()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_rescue_command_the_documents_show_parses(document: Path) -> None:
    parser = cli.build_parser()
    for line in _shell_lines(document.read_text()):
        if line.startswith("kubectl rescue "):
            line = line.removeprefix("kubectl ")
        if not line.startswith("rescue "):
            continue
        words = shlex.split(line)
        try:
            parser.parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"{document.name}: `{line}` is not a valid rescue command")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file(document: Path) -> None:
    for target in re.findall(r"\]\(([^)]+)\)", document.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (document.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{document.name} links to {target}, which does not exist"


def test_the_runbook_keeps_the_template_of_process_md() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = [line for line in runbook.splitlines() if line.startswith("#")]
    for expected in (
        "# Runbook: Rescue",
        "## Overview",
        "## Architecture",
        "## Common Operations",
        "### Check health",
        "### View logs",
        "### Restart",
        "### Scale",
        "## Troubleshooting",
        "### High latency",
        "### Error rate spike",
        "### Health check failure",
        "## Rollback Procedure",
        "## Contacts",
    ):
        assert expected in headings, f"the runbook has no {expected!r}"


def test_the_runbook_names_every_alert_and_the_conditions_the_operator_sets() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    rules = yaml.safe_load((ROOT / "deploy" / "monitoring" / "rules.yml").read_text())
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        assert alert in runbook, f"the runbook does not say what to do about {alert}"
    operator = " ".join(p.read_text() for p in (ROOT / "operator").glob("*.py"))
    for condition in ("GitReachable", "MitigationVerified", "TransitionRefused"):
        assert f"`{condition}`" in runbook
        assert f'"{condition}"' in operator, f"the operator never sets {condition}"


def test_the_published_openapi_schema_is_what_the_webhook_generates() -> None:
    published = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert published == cli.webhook_openapi(), (
        "docs/openapi.json is stale: regenerate it with "
        "`rescue webhook --print-openapi > docs/openapi.json`"
    )
    assert "/api/v1/alerts" in published["paths"]


def test_the_published_schema_describes_the_notification_and_every_answer() -> None:
    published = json.loads((ROOT / "docs" / "openapi.json").read_text())
    post = published["paths"]["/api/v1/alerts"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert {"version", "groupKey", "alerts"} <= set(body["properties"])
    assert {"200", "400", "401", "403", "413", "500", "503"} <= set(post["responses"])
    text = json.dumps(published)
    refs = set(re.findall(r"#/components/schemas/([\w.-]+)", text))
    assert refs <= set(published["components"]["schemas"]), "a $ref points nowhere"

"""The Dockerfile, read as Docker reads it, builds the image the manifests expect.

No Docker daemon runs here, so the image is never built in the tests: these checks parse the
Dockerfile's instructions instead and hold it to what deploy/ assumes of the image (the user
the pods run as, a read-only root filesystem, one entrypoint for both components) and to what
makes a build repeatable (tagged bases, the pinned constraints).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from rescue import cli

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def _instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined and comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return found


@dataclass(frozen=True)
class Stage:
    image: str
    name: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def _stages() -> list[Stage]:
    instructions = _instructions(DOCKERFILE.read_text())
    defaults = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            key, _, value = instruction.arguments.partition("=")
            defaults[key] = value
    stages: list[Stage] = []
    for index, instruction in enumerate(instructions):
        if instruction.keyword != "FROM":
            continue
        words = instruction.arguments.split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], words[0])
        name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
        body = []
        for following in instructions[index + 1 :]:
            if following.keyword == "FROM":
                break
            body.append(following)
        stages.append(Stage(image, name, body))
    return stages


def _final() -> Stage:
    return _stages()[-1]


def _env(stage: Stage) -> dict[str, str]:
    env = {}
    for arguments in stage.all("ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def _rendered_base() -> list[dict[str, Any]]:
    documents = []
    for name in ("webhook.yaml", "operator.yaml"):
        documents += [d for d in yaml.safe_load_all((ROOT / "deploy/base" / name).read_text()) if d]
    return [d for d in documents if d["kind"] == "Deployment"]


def test_the_build_has_a_build_stage_and_a_runtime_stage_on_python_311_slim() -> None:
    stages = _stages()
    assert [s.name for s in stages] == ["build", "runtime"]
    for stage in stages:
        repository, _, tag = stage.image.partition(":")
        assert repository == "python"
        assert tag.startswith("3.11-slim"), stage.image
    assert any("--from=build" in copy for copy in _final().all("COPY"))


def test_no_base_image_floats_on_latest_or_on_no_tag() -> None:
    for stage in _stages():
        name = stage.image.split("@")[0]
        assert ":" in name.rsplit("/", 1)[-1], f"{stage.image} names no tag"
        assert not name.endswith(":latest"), stage.image


def test_the_package_is_installed_with_the_pinned_constraints_from_wheels() -> None:
    (build,) = [s for s in _stages() if s.name == "build"]
    run = " ".join(build.all("RUN"))
    assert "-c constraints.txt" in run
    assert "--only-binary=:all:" in run
    copied = " ".join(build.all("COPY")).split()
    for source in ("pyproject.toml", "constraints.txt", "README.md"):
        assert source in copied
    # rescue/ links to these folders; without them the installed package would be empty.
    for folder in ("core/", "webhook/", "operator/", "crds/", "rescue/"):
        assert folder in copied
        assert (ROOT / folder).is_dir()


def test_the_build_context_keeps_what_the_image_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for copied in " ".join(s for stage in _stages() for s in stage.all("COPY")).split():
        if copied.startswith("--"):
            continue
        assert copied.rstrip("/") not in ignored, f"{copied} is copied but .dockerignore drops it"
    assert {".git", ".venv", "tests"} <= ignored


def test_the_runtime_has_git_and_ssh_and_runs_as_a_numeric_non_root_user() -> None:
    final = _final()
    run = " ".join(final.all("RUN"))
    assert re.search(r"apt-get install [^&]*\bgit\b", run)
    assert re.search(r"apt-get install [^&]*\bopenssh-client\b", run)
    (user,) = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, f"USER {user} is not a numeric non-root user"
    assert gid.isdigit() and int(gid) > 0
    # ssh needs a passwd entry for the UID it runs as.
    assert f"--uid {uid}" in run


def test_the_user_is_the_one_the_manifests_run_as() -> None:
    (user,) = _final().all("USER")
    uid = int(user.partition(":")[0])
    for deployment in _rendered_base():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == uid
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_nothing_is_written_outside_tmp_at_run_time() -> None:
    env = _env(_final())
    assert env["HOME"] == "/tmp"
    assert env["XDG_CACHE_HOME"].startswith("/tmp/")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # The manifests give every container a read-only root and a writable /tmp.
    for deployment in _rendered_base():
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], container["name"]


def test_one_entrypoint_serves_both_components_by_argument() -> None:
    (entrypoint,) = _final().all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["rescue"]
    (subcommands,) = [
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    commands = set(subcommands.choices)
    for deployment in _rendered_base():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "command" not in container
        assert container["args"][0] in commands
        assert container["args"][0] == container["name"]


@pytest.mark.parametrize("port", ["8080", "8081", "9090"])
def test_the_image_declares_the_ports_the_manifests_use(port: str) -> None:
    exposed = " ".join(_final().all("EXPOSE")).split()
    assert port in exposed

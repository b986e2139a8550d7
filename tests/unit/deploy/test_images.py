"""The Dockerfiles and scripts of deploy/docker: what can be checked without a Docker
engine (the images themselves are not built on these machines)."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version

from gateway.control.lifecycle.config_file import read_config
from tests.support.deploy import DEPLOY, ROOT, tool
from tests.support.locks import locked

DOCKER = DEPLOY / "docker"


def stages(dockerfile: str) -> list[list[str]]:
    """The instructions of each stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", (DOCKER / dockerfile).read_text())
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            result.append([])
        result[-1].append(line)
    return result


def test_the_gateway_image_is_multi_stage_slim_and_unprivileged() -> None:
    build, final = stages("gateway.Dockerfile")
    assert build[0].startswith("FROM python:3.11") and build[0].endswith(" AS build")
    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim-\w+", final[0])
    assert "USER 10001:10001" in final
    assert any(line.startswith("HEALTHCHECK ") and "/v2/health/live" in line for line in final)
    assert 'ENTRYPOINT ["gateway"]' in final
    # Nothing is installed or compiled in the final stage: it copies the virtual environment.
    assert not [line for line in final if line.startswith("RUN ") and "install" in line]
    assert any(line.startswith("COPY --from=build /opt/gateway") for line in final)
    # The build installs the runtime lock, hashes checked, and nothing unpinned.
    installs = [line for line in build if line.startswith("RUN ") and " install " in line]
    assert "--require-hashes" in installs[0] and "requirements/runtime.txt" in installs[0]
    assert all("--no-deps" in line for line in installs)


def test_the_triton_image_is_a_pinned_release_with_the_tokenizers_package() -> None:
    (stage,) = stages("triton.Dockerfile")
    release = re.fullmatch(r"FROM nvcr\.io/nvidia/tritonserver:(\d\d)\.(\d\d)-py3", stage[0])
    assert release and (int(release[1]), int(release[2])) >= (25, 4)  # >= 25.04 (Triton 2.57)
    assert any("requirements/triton.txt" in line for line in stage if line.startswith("COPY "))
    assert any("--require-hashes" in line for line in stage if line.startswith("RUN "))
    # The version the tests run the text_tokenizer model with.
    assert version("tokenizers") == locked(ROOT / "requirements" / "triton.txt")["tokenizers"]
    assert any(line.startswith("USER ") and "root" not in line for line in stage)


def test_the_tensorrt_plan_script_parses_and_names_the_models_inputs() -> None:
    script = DOCKER / "build-tensorrt-plans.sh"
    subprocess.run([tool("bash"), "-n", str(script)], check=True, timeout=30)
    shapes = dict(re.findall(r'\[(\w+)\]="([^"]+)"', script.read_text()))
    assert set(shapes) == {"tabular_classifier", "digits_classifier", "text_encoder"}
    for model, text in shapes.items():
        config = read_config(ROOT / "model_repository" / model)
        named = {part.split(":")[0] for shape in text.split() for part in shape.split(",")}
        assert named == {tensor.name for tensor in config.input}, model


def test_the_images_copy_every_package_their_command_imports() -> None:
    """The serving package imports `auth` and `resilience`; `gateway models build` imports
    `model_build` too (tests/unit/test_architecture.py holds the rest of the map)."""

    def copied(dockerfile: str) -> set[str]:
        build = stages(dockerfile)[0]
        return {line.split()[1] for line in build if line.startswith("COPY ") and "--" not in line}

    def admitted(dockerfile: str) -> set[str]:
        ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
        return {line[1:].rstrip("/") for line in ignore if line.startswith("!")}

    serving = {"gateway", "auth", "resilience"}
    assert serving <= copied("gateway.Dockerfile") & admitted("gateway.Dockerfile")
    building = serving | {"model_build"}
    assert building <= copied("models.Dockerfile") & admitted("models.Dockerfile")

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
DOCKERFILES = sorted(path.name for path in DOCKER.glob("*.Dockerfile"))


def instructions(dockerfile: str) -> list[str]:
    """Its instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", (DOCKER / dockerfile).read_text())
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def stages(dockerfile: str) -> list[list[str]]:
    """The instructions of each stage (the build arguments before the first FROM left out)."""
    result: list[list[str]] = []
    for line in instructions(dockerfile):
        if line.startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def base_image(dockerfile: str) -> str:
    """The default of its BASE_IMAGE build argument, which every stage is built FROM."""
    (default,) = [
        line.removeprefix("ARG BASE_IMAGE=")
        for line in instructions(dockerfile)
        if line.startswith("ARG BASE_IMAGE=")
    ]
    assert all(stage[0].split()[1] == "${BASE_IMAGE}" for stage in stages(dockerfile))
    return default


def test_every_image_builds_on_a_base_given_as_an_argument_and_keeps_no_pip_certificate() -> None:
    """So the tests build them on a local Debian base (`podman build --pull=never`), and a
    build behind a proxy passes its CA bundle as PIP_CERT: a build argument (pip reads it
    from the environment of each RUN), the file mounted, never copied or set with ENV."""
    for dockerfile in DOCKERFILES:
        assert base_image(dockerfile)
        for stage in stages(dockerfile):
            if any(" install " in line for line in stage if line.startswith("RUN ")):
                assert "ARG PIP_CERT" in stage, (dockerfile, stage[0])
        assert not [
            line
            for line in instructions(dockerfile)
            if "CERT" in line and not line.startswith("ARG ")
        ]


def test_the_gateway_image_is_multi_stage_slim_and_unprivileged() -> None:
    build, final = stages("gateway.Dockerfile")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base_image("gateway.Dockerfile"))
    assert build[0].endswith(" AS build") and final[0] == "FROM ${BASE_IMAGE}"
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
    release = re.fullmatch(
        r"nvcr\.io/nvidia/tritonserver:(\d\d)\.(\d\d)-py3", base_image("triton.Dockerfile")
    )
    assert release and (int(release[1]), int(release[2])) >= (25, 4)  # >= 25.04 (Triton 2.57)
    assert any("requirements/triton.txt" in line for line in stage if line.startswith("COPY "))
    assert any("--require-hashes" in line for line in stage if line.startswith("RUN "))
    # The version the tests run the text_tokenizer model with.
    assert version("tokenizers") == locked(ROOT / "requirements" / "triton.txt")["tokenizers"]
    assert any(line.startswith("USER ") and "root" not in line for line in stage)


def test_the_cpu_triton_image_runs_the_locked_wheel_with_the_projects_onnx_backend() -> None:
    build, final = stages("triton-cpu.Dockerfile")
    assert any("requirements/triton-cpu.txt" in line for line in build if line.startswith("COPY "))
    assert any("--require-hashes" in line for line in build if line.startswith("RUN "))
    backend = "devstack/backends/onnxruntime/model.py /opt/triton-backends/onnxruntime/model.py"
    assert f"COPY {backend}" in build
    assert "USER 1000:1000" in final
    assert final[-2] == 'ENTRYPOINT ["tritonserver", "--backend-directory=/opt/triton/backends"]'
    locked_versions = locked(ROOT / "requirements" / "triton-cpu.txt")
    assert locked_versions["nvidia-pytriton"] == version("nvidia-pytriton")  # what tests run


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


def test_the_models_image_builds_alone_and_its_volume_is_writable_by_the_seeder() -> None:
    """Compose builds images in parallel: the models image must not be built FROM another of
    the project's images. An empty named volume takes the owner of its mount point, so the
    image makes /models the seeding user's."""
    build, seeder, final = stages("models.Dockerfile")
    assert not [s[0] for s in (build, seeder, final) if "inference-gateway/" in s[0]]
    assert any("COPY --from=seeder /opt/gateway" in line for line in final)
    assert "RUN mkdir /models && chown 10001:10001 /models" in final
    assert final.index("USER 10001:10001") > final.index(
        "RUN mkdir /models && chown 10001:10001 /models"
    )
    assert final[-1] == 'ENTRYPOINT ["gateway", "models", "seed", "/seed", "/models"]'

"""The `gateway` command.

gateway up [--host H] [--port 8000] [--state-dir DIR] [--workers N] [--tritons N]
           [--grpc-port PORT (default: --port + 1)]
    the whole stack on this machine (embedded Redis and Triton unless configured; N Tritons
    on the one model repository, balanced over)
gateway serve [--host H] [--port 8000] [--workers N] [--grpc-port 8001]
              [--tls-cert-file PEM --tls-key-file PEM]
    the gateway alone, against the Triton and Redis of GATEWAY_* (production)
gateway models build [--repository DIR] [--force]
    train and export the repository's models (skips versions that exist)
gateway models seed SOURCE DEST [--gpu]
    bring a repository up to date with a built one, keeping what was published into it
    (deployments; see gateway/control/repository_seed.py)
gateway models list | publish | traffic | promote | rollback | unload
    the model lifecycle, through a running gateway's admin API (see gateway/cli/models.py)
gateway keys generate | create | list | revoke | rotate
    API keys, against the configured key store (see gateway/cli/keys.py)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.cli import keys as keys_cli
from gateway.cli import models as models_cli
from gateway.runtime.startup_checks import StartupRefused
from gateway.settings import InvalidSettings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run Redis, Triton and the gateway on this machine")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--state-dir", type=Path, help="logs and data (default: GATEWAY_STATE_DIR)")
    up.add_argument("--workers", type=int, default=1)
    up.add_argument(
        "--tritons", type=int, default=1, help="embedded Triton processes to balance over"
    )
    up.add_argument("--grpc-port", type=int, help="v2 gRPC port (default: --port + 1; 0: off)")

    serve = commands.add_parser("serve", help="run the gateway alone (production)")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server's default in a container
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--grpc-port", type=int, default=8001, help="v2 gRPC port (0: off)")
    serve.add_argument("--tls-cert-file", type=Path, help="PEM certificate: serve HTTPS")
    serve.add_argument("--tls-key-file", type=Path, help="PEM key of --tls-cert-file")

    models = commands.add_parser("models", help="the model repository")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    build = model_commands.add_parser("build", help="build the repository's model files")
    build.add_argument("--repository", type=Path, help="default: GATEWAY_MODEL_REPOSITORY")
    build.add_argument("--force", action="store_true", help="rebuild versions that exist")
    seed = model_commands.add_parser("seed", help="fill a shared repository from a built one")
    seed.add_argument("source", type=Path)
    seed.add_argument("destination", type=Path)
    seed.add_argument("--gpu", action="store_true", help="KIND_GPU and TensorRT FP16 configs")
    models_cli.add_commands(model_commands)

    keys_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(**_setting_options(args))
    except InvalidSettings as exc:
        for problem in exc.problems:
            print(f"gateway: {problem}", file=sys.stderr)
        return 2
    if getattr(args, "state_dir", None) is not None:  # up, and the commands that find it
        settings = settings.model_copy(update={"state_dir": args.state_dir})
    status = 0
    try:
        if args.command == "up":
            from devstack.up import up

            up(settings, args.host, args.port, args.workers, args.tritons, args.grpc_port)
        elif args.command == "serve":
            from gateway.runtime.serve import serve

            serve(settings, args.host, args.port, args.workers, args.grpc_port or None)
        elif args.command == "models" and args.models_command == "build":
            status = _build_models(args.repository or settings.model_repository, args.force)
        elif args.command == "models" and args.models_command == "seed":
            status = _seed_models(args.source, args.destination, args.gpu)
        elif args.command == "models":
            status = models_cli.run(args, settings)
        elif args.command == "keys":
            status = keys_cli.run(args, settings)
        sys.stdout.flush()  # here, so a reader that went away is seen below
    except StartupRefused as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gateway models list | head`: the reader has had enough
        # Python flushes stdout again at exit; give it somewhere to go quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    return status


def _setting_options(args: argparse.Namespace) -> dict[str, Path]:
    """Command-line options that are settings (checked as their GATEWAY_* variables)."""
    names = ("tls_cert_file", "tls_key_file")
    return {name: getattr(args, name) for name in names if getattr(args, name, None)}


def _seed_models(source: Path, destination: Path, gpu: bool) -> int:
    from gateway.control.repository_seed import seed

    if not source.is_dir():
        print(f"gateway: no model repository at {source}", file=sys.stderr)
        return 2
    print(f"seeded {destination}: {seed(source, destination, gpu).summary()}")
    return 0


def _build_models(repository: Path, force: bool) -> int:
    from model_build import build_repository

    print(f"{'model':<20} {'version':>7}  {'quality':>26}  file")
    for built in build_repository(repository, force):
        quality = "-" if built.quality is None else f"{built.quality_name} {built.quality:.6f}"
        action = "built" if built.built else "exists"
        print(f"{built.model:<20} {built.version:>7}  {quality:>26}  {built.path} ({action})")
    return 0

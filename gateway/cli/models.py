"""`gateway models ...`: the model lifecycle from the command line, through the admin API.

    gateway models list [--json]
    gateway models add MODEL FILE.onnx | DIR [--dry-run] [--max-batch-size N] [--instances N]
                                             [--no-dynamic-batching]
        a new model: from an ONNX file, its config.pbtxt derived from the graph (shown, then
        written; --dry-run shows it only) and version 1 published; from a folder with a
        config.pbtxt of its own (any backend), taken as it is
    gateway models publish MODEL FILE.onnx | --from models:/<name>/<version>|@<alias>
    gateway models sync MODEL REGISTERED_MODEL       (registry aliases -> versions, traffic)
    gateway models traffic MODEL 1=90 2=10 [--sticky] [--shadow VERSION=PERCENT]
    gateway models promote MODEL VERSION [--force]
    gateway models rollback MODEL
    gateway models unload MODEL VERSION

The gateway is `--url` (default: the one of `<state-dir>/stack.json`, else
http://127.0.0.1:8000); the admin key is `--key` or GATEWAY_KEY.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx

from gateway.runtime.stack_state import stack_value
from gateway.settings import Settings


def add_commands(models: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = models.add_parser(name, help=help_text)
        parser.add_argument("--url", help="the gateway (default: from stack.json)")
        parser.add_argument("--key", help="an admin key (default: GATEWAY_KEY)")
        parser.add_argument(
            "--state-dir", type=Path, help="of the `gateway up` to use (default: GATEWAY_STATE_DIR)"
        )
        return parser

    add = command("add", "a new model from an ONNX file or a model folder")
    add.add_argument("model")
    add.add_argument("source", type=Path, help="FILE.onnx, or a folder with a config.pbtxt")
    add.add_argument("--dry-run", action="store_true", help="show the derived config only")
    add.add_argument("--max-batch-size", type=int, default=64, help="when the graph batches")
    add.add_argument("--instances", type=int, default=1, help="model instances in Triton")
    add.add_argument(
        "--no-dynamic-batching", action="store_true", help="no dynamic batching in Triton"
    )
    listing = command("list", "models, versions, states and traffic splits")
    listing.add_argument("--json", action="store_true", help="the admin API's JSON, for scripts")
    publish = command("publish", "publish an ONNX file or a registry version as the next version")
    publish.add_argument("model")
    publish.add_argument("file", type=Path, nargs="?")
    publish.add_argument("--from", dest="source", help="models:/<name>/<version> or @<alias>")
    sync = command("sync", "MLflow registry aliases drive versions and traffic")
    sync.add_argument("model")
    sync.add_argument("registered_model")
    traffic = command("traffic", "split unversioned requests among versions")
    traffic.add_argument("model")
    traffic.add_argument("weights", nargs="+", help="VERSION=WEIGHT ...")
    traffic.add_argument("--sticky", action="store_true", help="a key keeps its version")
    traffic.add_argument(
        "--shadow",
        metavar="VERSION=PERCENT",
        help="mirror PERCENT %% of the model's requests to VERSION, compared, never served",
    )
    promote = command("promote", "quality gate, then all traffic to a version")
    promote.add_argument("model")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="skip the quality gate")
    rollback = command("rollback", "back to the previous traffic split")
    rollback.add_argument("model")
    unload = command("unload", "stop serving a version")
    unload.add_argument("model")
    unload.add_argument("version")


DEFAULT_URL = "http://127.0.0.1:8000"
COMMANDS = ("list", "add", "publish", "sync", "traffic", "promote", "rollback", "unload")


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = (args.url or stack_value(settings.state_dir, "gateway") or "").rstrip("/")
    hint = ""
    if not url:
        url = DEFAULT_URL
        hint = (
            f" (no running `gateway up` in {settings.state_dir}, so the default; --url, or "
            "--state-dir for the stack you started)"
        )
    if args.models_command == "publish" and (args.file is None) == (args.source is None):
        print(
            "gateway: publish takes FILE.onnx or --from models:/..., one of them", file=sys.stderr
        )
        return 2
    key = args.key or os.environ.get("GATEWAY_KEY")
    if not key:
        print("gateway: an admin key is needed: --key or GATEWAY_KEY", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
        try:
            response = _send(client, args)
        except httpx.HTTPError as exc:
            print(f"gateway: cannot reach {url}{hint}: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:  # the file to publish
            read = getattr(args, "file", None) or getattr(args, "source", None)
            print(f"gateway: cannot read {read}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    try:
        document: Any = response.json() if response.content else {}
    except ValueError:
        print(f"gateway: {url} answered {response.status_code} without JSON", file=sys.stderr)
        return 1
    if response.is_error:
        error = document.get("error", document) if isinstance(document, dict) else document
        print(f"gateway: {response.status_code}: {error}", file=sys.stderr)
        return 1
    if args.models_command == "list" and not args.json:
        print(models_table(document.get("models", [])))
    elif args.models_command == "add":
        print(added_text(document))
    else:
        print(json.dumps(document, indent=2))
    return 0


def added_text(document: dict[str, Any]) -> str:
    """What `add` did: the config, then a line saying what was added (or would be)."""
    name = document.get("model")
    if not document.get("added"):
        return f"{document.get('config', '')}\n(dry run: model '{name}' not added)"
    versions = document.get("versions") or [document.get("version")]
    listed = ", ".join(str(v) for v in versions)
    return f"{document.get('config', '')}\nadded model '{name}', version {listed}: READY"


def models_table(models: list[dict[str, Any]]) -> str:
    """One row per model version: state, share of unversioned traffic, Triton's reason."""
    rows = [f"{'model':<24} {'version':>7}  {'state':<12} {'traffic':>11}  reason"]
    for model in models:
        split = model.get("traffic") or {}
        weights: dict[str, int] = split.get("weights", {})
        total = sum(weights.values())
        for version in model.get("versions", []):
            share = weights.get(version["version"], 0)
            traffic = f"{100 * share / total:.0f}%" if total else "-"
            if split.get("sticky") and share:
                traffic += "*"
            shadow = split.get("shadow") or {}
            if shadow.get("version") == version["version"]:
                traffic = f"shadow {shadow['percent']:g}%"
            rows.append(
                f"{model['name'][:24]:<24} {version['version']:>7}  "
                f"{version.get('state', '?'):<12} {traffic:>11}  {version.get('reason', '')}"
            )
    if any((model.get("traffic") or {}).get("sticky") for model in models):
        rows.append("* sticky: each key keeps its version")
    return "\n".join(rows)


def _send(client: httpx.Client, args: argparse.Namespace) -> httpx.Response:
    command = args.models_command
    if command == "list":
        return client.get("/admin/models")
    if command == "add":
        return _add(client, args)
    if command == "publish" and args.source:
        return client.post(f"/admin/models/{args.model}/versions", json={"from": args.source})
    if command == "sync":
        return client.post(
            f"/admin/models/{args.model}/sync", json={"registered_model": args.registered_model}
        )
    if command == "publish":
        content = args.file.read_bytes()
        return client.post(
            f"/admin/models/{args.model}/versions",
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
    if command == "traffic":
        weights = dict(_weight(item) for item in args.weights)
        body: dict[str, Any] = {"weights": weights, "sticky": args.sticky}
        if args.shadow:
            version, percent = _weight(args.shadow)
            body["shadow"] = {"version": version, "percent": percent}
        return client.put(f"/admin/models/{args.model}/traffic", json=body)
    if command == "promote":
        return client.post(
            f"/admin/models/{args.model}/promote",
            json={"version": args.version, "force": args.force},
        )
    if command == "rollback":
        return client.post(f"/admin/models/{args.model}/rollback")
    return client.delete(f"/admin/models/{args.model}/versions/{args.version}")


def _add(client: httpx.Client, args: argparse.Namespace) -> httpx.Response:
    source: Path = args.source
    if source.is_dir():
        return client.post(
            f"/admin/models/{args.model}",
            content=_tarred(source),
            headers={"Content-Type": "application/gzip"},
        )
    params = {
        "dry_run": str(args.dry_run).lower(),
        "max_batch_size": str(args.max_batch_size),
        "instances": str(args.instances),
        "dynamic_batching": str(not args.no_dynamic_batching).lower(),
    }
    return client.post(
        f"/admin/models/{args.model}",
        params=params,
        content=source.read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )


def _tarred(folder: Path) -> bytes:
    """`folder`'s files as a gzip'd tar archive, paths relative to it (caches left out)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _weight(item: str) -> tuple[str, int]:
    version, _, weight = item.partition("=")
    if not version or not weight.isdigit():
        raise SystemExit(f"gateway: '{item}' is not VERSION=WEIGHT")
    return version, int(weight)

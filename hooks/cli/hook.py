"""``obol hook ...``: run the sync hook server, answer one sync request, render an offer offline.

* ``serve`` reads the configuration once, opens the sync port and runs gunicorn with the Flask
  app on it (:mod:`hooks.server.sync_server`): the ``sync`` container.
* ``busy`` does the same for the busy responder under uvicorn (:mod:`hooks.server.busy`): the
  ``busy`` container. Kubernetes runs, probes and restarts the two; locally, run both.
* ``sync`` answers a sync request from stdin through :func:`hooks.server.app.handle_sync_body`, the
  same function POST /sync uses.
* ``render`` reads ServiceOffers the way ``kubectl -f`` does (repeated ``-f``, directories,
  multi-document files; :mod:`hooks.cli.inputs`, bounded alias-free YAML of
  :mod:`hooks.core.user_yaml`), checks apiVersion and kind, validates each exactly as
  ``obol sell`` does (same messages, same warnings on stderr), then wraps it in a sync request
  with no observed children and prints the children the hook would create, for people without
  a cluster. What it cannot render is reported and skipped (exit 3).

Errors are one line on stderr and an exit code of :mod:`hooks.cli.errors` (3: the input is
wrong, 8: configuration, 9: internal failure); never a traceback.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import click
import orjson
import yaml

from hooks.cli.errors import EXIT_CONFIG, EXIT_INTERNAL, EXIT_INVALID, CliError, configured
from hooks.cli.inputs import STDIN, expand_sources, read_source
from hooks.config import (
    BIND,
    BUSY_BIND,
    THREADS,
    ShellConfig,
    load_config,
    load_settings,
    process_environment,
    retired_variables,
)
from hooks.core import api
from hooks.core.errors import SpecError
from hooks.core.settings import Settings
from hooks.core.user_yaml import MAX_BYTES, UserYamlError, parse_user_yaml


@click.group(
    epilog="""\b
Examples:
  obol hook serve
  obol hook render -f examples/inference-qwen36-fast.yaml
"""
)
def hook() -> None:
    """Run the Metacontroller sync hook, or exercise it without a cluster."""


@hook.command(
    epilog="""\b
Examples:
  obol hook serve
  obol hook serve --bind 127.0.0.1:9090 --threads 8

\b
Serves POST /sync and /finalize for Metacontroller, /metrics, and the
/healthz and /readyz probes (gunicorn, the Flask app). The busy responder
is its own command (obol hook busy), in its own container. Other settings
come from OBOL_* environment variables (see docs/settings.md).
"""
)
@click.option("--bind", metavar="HOST:PORT", help="Sync listener [env OBOL_BIND; 0.0.0.0:8080].")
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    help="Request threads of the one gunicorn worker [env OBOL_THREADS; 4].",
)
def serve(bind: str | None, threads: int | None) -> None:
    """Serve the sync hook (gunicorn and Flask) until stopped."""
    config = _server_config({BIND: bind, THREADS: threads})
    listener = _listen(config.bind, BIND)
    from hooks.server.sync_server import serve as serve_sync

    serve_sync(config, listener)


@hook.command(
    epilog="""\b
Examples:
  obol hook busy
  obol hook busy --bind 127.0.0.1:9091

\b
Serves GET /busy/<namespace>/<name> (the 429 body Traefik's errors
Middleware asks for), /metrics, and the /healthz and /readyz probes
(uvicorn). Other settings come from OBOL_* environment variables.
"""
)
@click.option(
    "--bind", metavar="HOST:PORT", help="Busy listener [env OBOL_BUSY_BIND; 0.0.0.0:8081]."
)
def busy(bind: str | None) -> None:
    """Serve the busy responder (uvicorn) until stopped."""
    config = _server_config({BUSY_BIND: bind})
    listener = _listen(config.busy_bind, BUSY_BIND)
    from hooks.server.busy import serve as serve_busy

    serve_busy(config, listener)


def _server_config(flags: dict[str, object]) -> ShellConfig:
    """The configuration, with the command's flags in place of their variables."""
    env = process_environment()
    env.update({variable: str(value) for variable, value in flags.items() if value is not None})
    for retired in retired_variables(env):
        click.echo(f"Warning: {retired}", err=True)
    return configured(lambda: load_config(env))


def _listen(bind: str, variable: str) -> socket.socket:
    """The open listener, or one ``Error:`` line and exit 8 before any server starts."""
    from hooks.server.listener import open_listener

    try:
        return open_listener(bind)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"configuration: {variable}: cannot listen on {bind}: {reason}"
        raise CliError(message, EXIT_CONFIG) from None


@hook.command(
    "sync",
    epilog="""\b
Example:
  obol hook sync < request.json > response.json

\b
Exit status: 0 answered (200), 3 malformed request (400), 8 configuration,
9 internal error (500).
""",
)
def sync_command() -> None:
    """Answer one Metacontroller sync request read from stdin, as POST /sync would."""
    from hooks.server.app import handle_sync_body

    config = configured(load_config)
    # Bounded like POST /sync: never more than the cap (plus one byte to know it is over).
    body = read_source(STDIN, config.max_request_bytes)
    if len(body) > config.max_request_bytes:
        raise CliError(
            f"bad request: the request is larger than {config.max_request_bytes} bytes"
            " (OBOL_MAX_REQUEST_BYTES)",
            EXIT_INVALID,
        )
    answer = handle_sync_body(body, config.settings)
    if answer.status == 200:
        stdout = sys.stdout.buffer
        stdout.write(answer.body + b"\n")
        stdout.flush()
        return
    if answer.status == 400:
        raise CliError(f"bad request: {answer.detail}", EXIT_INVALID)
    raise CliError(f"internal error: {_describe(answer.error)}", EXIT_INTERNAL)


@hook.command(
    epilog="""\b
Examples:
  obol hook render -f examples/inference-qwen36-fast.yaml
  obol hook render -f examples/
  obol hook render -f a.yaml -f b.yaml -o json
  cat offer.yaml | obol hook render -f -

\b
Like kubectl -f: repeat -f, name a directory (its .yaml, .yml and .json files; -R
descends), or put several documents in one file. Every ServiceOffer is rendered; an
invalid one, or a document of another kind, is reported on stderr (one line each) and
skipped, and the command then exits 3. With a payment gate other than the default
(OBOL_PAYMENT_GATE, OBOL_VERIFIER_SETTLEMENT) each offer's paymentGate block is printed
before its children, as YAML comments (on stderr with -o json).
"""
)
@click.option(
    "-f",
    "--filename",
    "filenames",
    required=True,
    multiple=True,
    metavar="FILE|DIR",
    help="ServiceOffer YAML or JSON file, directory, or '-' for stdin (repeatable).",
)
@click.option("-R", "--recursive", is_flag=True, help="Descend into the directories given with -f.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Multi-document YAML, or a JSON v1 List.",
)
def render(filenames: tuple[str, ...], recursive: bool, output: str) -> None:
    """Print the children the hook would create for ServiceOffers (no cluster needed)."""
    settings = configured(load_settings)
    # Every input first (each bounded), so one offer alone fails with its own single line.
    inputs: list[tuple[str, Any] | CliError] = []
    for source in expand_sources(filenames, recursive):
        try:
            inputs.extend(_read_documents(source))
        except CliError as problem:
            inputs.append(problem)
    children: list[dict[str, Any]] = []
    skipped = 0
    for item in inputs:
        try:
            if isinstance(item, CliError):
                raise item
            rendered = _render_offer(*item, settings, output)
        except CliError as problem:
            if len(inputs) == 1:
                raise
            click.echo(f"Error: {problem.message} (skipped)", err=True)
            skipped += 1
            continue
        children.extend(rendered)
        if output == "yaml" and rendered:
            click.echo(format_children(rendered, output), nl=False)
    if output == "json":
        click.echo(format_children(children, output), nl=False)
    if skipped:
        raise CliError(f"{skipped} of {len(inputs)} inputs not rendered (see above)", EXIT_INVALID)


def _render_offer(where: str, offer: Any, settings: Settings, output: str) -> list[dict[str, Any]]:
    """The children of one ServiceOffer document; its notes and warnings go to stderr."""
    from hooks.cli.sell import validate_manifest, warn
    from hooks.core.sync import Outcome
    from hooks.server.app import handle_sync_body

    _check_kind(where, offer)
    try:
        validated = validate_manifest(offer, settings.asset_registry, settings)
    except SpecError as problem:
        raise CliError(f"{where}: invalid offer: {problem}", EXIT_INVALID) from None
    # Like kubectl without a context: an offer that names no namespace is rendered in "default"
    # (a sync request itself must name one).
    offer["metadata"].setdefault("namespace", "default")
    # The parsed YAML is JSON-shaped (parse_user_yaml), so this cannot fail on a value.
    body = orjson.dumps(render_request(offer))
    answer = handle_sync_body(body, settings)
    if answer.result is None:
        raise CliError(f"internal error: {_describe(answer.error)}", EXIT_INTERNAL)
    outcome, response = answer.result.outcome, answer.result.response
    if outcome is Outcome.INVALID:
        raise CliError(f"{where}: invalid spec: {answer.result.problem}", EXIT_INVALID)
    warn(validated.warnings)
    if outcome is Outcome.NOT_RENDERED:
        # A valid offer this controller keeps but renders nothing for (obol-stack's agent,
        # dataset, ... types): say so rather than print an empty list silently.
        click.echo(f"Note: {where}: not rendered: {answer.result.problem}", err=True)
    gate = response["status"].get("paymentGate")
    if isinstance(gate, dict):
        click.echo(gate_comment(gate), nl=False, err=output == "json")
    rendered: list[dict[str, Any]] = response["children"]
    return rendered


def gate_comment(gate: dict[str, Any]) -> str:
    """The status's ``paymentGate`` block as ``# status.paymentGate.<key>: <value>`` lines."""
    order = ("mode", "settledBy", "settlement", "perBuyerLimit", "message", "perBuyerMessage")
    keys = [k for k in order if k in gate] + sorted(k for k in gate if k not in order)
    return "".join(f"# status.paymentGate.{key}: {gate[key]}\n" for key in keys)


def render_request(offer: dict[str, Any]) -> dict[str, Any]:
    """A v2 sync request for ``offer`` with no observed children (a brand-new offer)."""
    return {
        "controller": {
            "apiVersion": "metacontroller.k8s.io/v1alpha1",
            "kind": "CompositeController",
            "metadata": {"name": "serviceoffer-controller"},
        },
        "parent": offer,
        "children": {api.children_key(kind, version): {} for version, kind, _ in api.CHILD_TYPES},
        "related": {},
        "finalizing": False,
    }


def format_children(children: list[dict[str, Any]], output: str) -> str:
    """Children as multi-document YAML (sorted keys) or as a JSON ``v1`` ``List``."""
    if output == "json":
        listing = {"apiVersion": "v1", "kind": "List", "items": children}
        return (
            orjson.dumps(listing, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode() + "\n"
        )
    return yaml.dump_all(
        children,
        Dumper=_BlockDumper,
        sort_keys=True,
        explicit_start=True,
        default_flow_style=False,
        width=1_000_000,
    )


class _BlockDumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (the pricing JSON) as readable literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _represent_str)


def _read_documents(source: str) -> list[tuple[str, Any]]:
    """The documents of ``source`` (``-``: stdin), each with how messages name it."""
    data = read_source(source, MAX_BYTES)
    name = "stdin" if source == STDIN else source
    try:
        documents = parse_user_yaml(data, name)
    except UserYamlError as exc:
        raise CliError(str(exc), EXIT_INVALID) from None
    if not documents:
        raise CliError(f"{name}: no document in it", EXIT_INVALID)
    if len(documents) == 1:
        return [(name, documents[0])]
    return [(f"{name} (document {n})", doc) for n, doc in enumerate(documents, start=1)]


def _check_kind(where: str, offer: Any) -> None:
    """A ServiceOffer mapping with apiVersion and kind, as ``kubectl apply`` requires."""
    if not isinstance(offer, dict):
        raise CliError(f"{where}: expected a ServiceOffer mapping", EXIT_INVALID)
    for field, expected in (("kind", api.KIND), ("apiVersion", api.API_VERSION)):
        if field not in offer:
            raise CliError(
                f"{where}: {field}: required field is missing (use {expected})", EXIT_INVALID
            )
        if offer[field] != expected:
            raise CliError(
                f"{where}: {field}: must be {expected} (got {offer[field]!r})", EXIT_INVALID
            )


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    return f"{type(error).__name__}: {error}"

"""``obol sell ...``: create, preview and inspect ServiceOffers with kubectl.

``inference`` and ``http`` build a ServiceOffer from flags (:func:`offer_manifest`, pure; presets
expand in :mod:`hooks.cli.presets`), validate it with the hook's own model and asset registry
(:func:`validate_manifest`) and apply it with ``kubectl apply -f -`` or print it (``--dry-run``);
``presets`` lists the capacity presets; ``status`` and ``list`` read offers with ``kubectl get``
and format them with :mod:`hooks.cli.offer_view`. obol-stack's flag spellings and defaults are
accepted (docs/sell.md, *obol-stack's CLI habits*); a defaulted value is said on stderr
(``Note: ...``) and every missing required option is reported in one message.

The dry-run output holds only what the seller set or a preset supplied, never a default the CRD
would fill in anyway. Every failure is ONE line on stderr with an exit code of
:mod:`hooks.cli.errors`. This module must never run a subprocess itself (every cluster call goes
through :mod:`hooks.cli.kubectl`), never autoscale or promise scaling, and never write anything
but the ServiceOffer the seller asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import yaml

from hooks.cli.errors import EXIT_INVALID, EXIT_USAGE, CliError, configured
from hooks.cli.inputs import read_source
from hooks.cli.kubectl import Kubectl, OfferNotFound
from hooks.cli.offer_view import (
    LIST_COLUMNS,
    OfferView,
    format_table,
    list_record,
    list_row,
    offer_view,
    status_record,
    status_text,
)
from hooks.cli.presets import (
    CAPACITY_MODE,
    NO_AUTOSCALING_NOTE,
    PRESET_COLUMNS,
    Preset,
    expand_limits,
    load_presets,
    preset_rows,
)
from hooks.config import (
    ASSET_REGISTRY_FILE,
    X402_WALLET,
    ConfigError,
    default_wallet,
    load_asset_registry,
    load_settings,
)
from hooks.core import api
from hooks.core.admission import enforced_limits
from hooks.core.assets import BUILTIN_REGISTRY, AssetRegistry
from hooks.core.errors import FieldProblem, SpecError
from hooks.core.models import parse_offer
from hooks.core.payment import ResolvedPayment, resolve_payment, verifier_warnings
from hooks.core.settings import Settings

# --runtime: every one of these serves the OpenAI chat API; the port is the one each listens on
# by default (vLLM's OpenAI server and "openai" 8000, llama.cpp's server 8080, ollama 11434).
RUNTIME_PORTS: Mapping[str, int] = {
    "openai": 8000,
    "vllm": 8000,
    "llama.cpp": 8080,
    "ollama": 11434,
}
RUNTIME_PROTOCOL = "openai-chat"
# obol-stack's CLI defaults: network base; `sell http` upstream port 8080; the CRD's port 11434.
DEFAULT_NETWORK = "base"
DEFAULT_HTTP_PORT = 8080
DEFAULT_INFERENCE_PORT = 11434
INFERENCE_PROTOCOLS = ("openai-chat", "openai-completions", "openai-embeddings")
KUBECTL_ENV = "OBOL_KUBECTL"


# --- flags -> spec (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlagField:
    """One flag and the spec field it sets."""

    param: str
    flag: str
    path: tuple[str, ...]


FLAG_FIELDS: tuple[FlagField, ...] = (
    FlagField("upstream", "--upstream", ("upstream", "service")),
    FlagField("upstream_namespace", "--upstream-namespace", ("upstream", "namespace")),
    FlagField("port", "--port", ("upstream", "port")),
    FlagField("health_path", "--health-path", ("upstream", "healthPath")),
    FlagField("path", "--path", ("path",)),
    FlagField("protocol", "--protocol", ("capabilities", "protocol")),
    FlagField("streaming", "--streaming/--no-streaming", ("capabilities", "streaming")),
    FlagField("context_window", "--context-window", ("capabilities", "contextWindowTokens")),
    FlagField("max_input_tokens", "--max-input-tokens", ("requestLimits", "maxInputTokens")),
    FlagField("max_output_tokens", "--max-output-tokens", ("requestLimits", "maxOutputTokens")),
    FlagField("max_body_bytes", "--max-body-bytes", ("requestLimits", "maxBodyBytes")),
    FlagField("gpu_count", "--gpu-count", ("capacity", "gpuCount")),
    FlagField("max_inflight", "--max-inflight", ("capacity", "maxInFlight")),
    FlagField(
        "per_buyer_max_inflight", "--per-buyer-max-inflight", ("capacity", "perBuyerMaxInFlight")
    ),
    FlagField("retry_after", "--retry-after", ("capacity", "retryAfterSeconds")),
    FlagField("network", "--network", ("payment", "network")),
    FlagField("payment_asset", "--payment-asset", ("payment", "asset")),
    FlagField("pay_to", "--pay-to", ("payment", "payTo")),
    FlagField("max_timeout", "--max-timeout", ("payment", "maxTimeoutSeconds")),
    FlagField("price", "--price", ("payment", "price", "perRequest")),
    FlagField("per_mtok", "--per-mtok", ("payment", "price", "perMTok")),
    FlagField("per_hour", "--per-hour", ("payment", "price", "perHour")),
    # obol-stack's spellings: its controller reads spec.limits (the same ceiling, and a rate).
    FlagField("max_in_flight", "--max-in-flight", ("limits", "maxInFlight")),
    FlagField("rps", "--rps", ("limits", "rps")),
)
_PRESET_SECTIONS = ("capacity", "requestLimits")


def _section_flags(flags: Mapping[str, Any], section: str) -> dict[str, Any]:
    return {f.path[-1]: flags.get(f.param) for f in FLAG_FIELDS if f.path[0] == section}


def offer_spec(offer_type: str, flags: Mapping[str, Any], preset: Preset | None) -> dict[str, Any]:
    """The spec mapping the flags and the preset describe: only fields that were set."""
    spec: dict[str, Any] = {"type": offer_type}
    for field in FLAG_FIELDS:
        value = flags.get(field.param)
        if value is None or field.path[0] in _PRESET_SECTIONS:
            continue
        node = spec
        for key in field.path[:-1]:
            node = node.setdefault(key, {})
        node[field.path[-1]] = value
    capacity, limits = expand_limits(
        preset, _section_flags(flags, "capacity"), _section_flags(flags, "requestLimits")
    )
    if limits is not None:
        spec["requestLimits"] = limits
    if capacity is not None:
        spec["capacity"] = capacity
    return spec


def offer_manifest(
    name: str,
    namespace: str | None,
    offer_type: str,
    flags: Mapping[str, Any],
    preset: Preset | None,
) -> dict[str, Any]:
    """The whole ServiceOffer object the flags describe (not yet validated)."""
    return _manifest(name, namespace, offer_spec(offer_type, flags, preset))


def _manifest(name: str, namespace: str | None, spec: dict[str, Any]) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace is not None else {})}
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": metadata, "spec": spec}


@dataclass(frozen=True, slots=True)
class ValidatedOffer:
    """A manifest that passed the model and the asset registry, plus what the hook would warn."""

    manifest: dict[str, Any]
    warnings: tuple[str, ...]
    payment: ResolvedPayment


def validate_manifest(
    manifest: Mapping[str, Any], registry: AssetRegistry, settings: Settings
) -> ValidatedOffer:
    """Validate like the hook does; return the manifest in the model's stable key order.

    Used by ``obol sell`` (before printing or applying) and ``obol hook render`` alike, so both
    refuse and warn about the same things; ``settings`` are the platform's gate and verifier (the
    ``OBOL_*`` variables the hook reads), so a limit the platform will not enforce is warned
    about here too. Raises :class:`SpecError` naming the field path, the value and the reason.
    """
    metadata = manifest.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    if namespace is not None:
        _check_namespace(namespace)
    offer = parse_offer(manifest)
    payment = resolve_payment(offer.spec.payment, registry)
    limits = enforced_limits(offer.spec, settings)
    canonical = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": dict(manifest["metadata"]),
        # Only what was set: the CRD fills its own defaults, and the output stays minimal.
        "spec": offer.spec.model_dump(by_alias=True, exclude_unset=True, exclude_none=True),
    }
    verifier = verifier_warnings(offer.spec.payment, settings)
    return ValidatedOffer(canonical, (*limits.warnings, *payment.warnings, *verifier), payment)


def _check_namespace(namespace: Any) -> None:
    if not isinstance(namespace, str):
        raise SpecError.at("metadata.namespace", "must be a string", namespace)
    if not api.is_dns_label(namespace):
        raise SpecError.at(
            "metadata.namespace",
            "must be a DNS-1123 label (lower-case letters, digits and '-')",
            namespace,
        )


def missing_options(flags: Mapping[str, Any]) -> list[str]:
    """Every required option that is missing (after defaults), to be reported at once."""
    missing = []
    if flags.get("upstream") is None:
        missing.append("--upstream")
    if flags.get("pay_to") is None:
        missing.append(f"--pay-to (or set {X402_WALLET})")
    if all(flags.get(price) is None for price in ("price", "per_mtok", "per_hour")):
        missing.append("a price: --price/--per-request, --per-mtok or --per-hour")
    return missing


def fill_defaults(offer_type: str, flags: dict[str, Any], runtime: str | None) -> list[str]:
    """Fill the network, port, wallet and protocol obol-stack's CLI would default; say which.

    Returns one note per defaulted value (printed on stderr), so nothing is chosen silently.
    """
    notes = []
    if flags.get("network") is None:
        flags["network"] = DEFAULT_NETWORK
        notes.append(f"--network not given: using {DEFAULT_NETWORK} (obol-stack's default)")
    if flags.get("port") is None:
        if runtime is not None:
            flags["port"] = RUNTIME_PORTS[runtime]
            why = f"the usual port of --runtime {runtime}"
        elif offer_type == "http":
            flags["port"] = DEFAULT_HTTP_PORT
            why = "obol-stack's default for sell http"
        else:
            flags["port"] = DEFAULT_INFERENCE_PORT
            why = "obol-stack's default upstream port"
        notes.append(f"--port not given: using {flags['port']} ({why})")
    if flags.get("pay_to") is None:
        wallet = default_wallet()
        if wallet is not None:
            flags["pay_to"] = wallet
            notes.append(f"--pay-to not given: using {X402_WALLET} ({wallet})")
    if runtime is not None and flags.get("protocol") is None:
        flags["protocol"] = RUNTIME_PROTOCOL
    return notes


def usage_problem(flags: Mapping[str, Any], preset: Preset | None) -> str | None:
    """The flag combination error, if any (checked before the model sees the spec)."""
    missing = missing_options(flags)
    if missing:
        return "missing required options: " + "; ".join(missing)
    capacity_given = [
        f.flag for f in FLAG_FIELDS if f.path[0] == "capacity" and flags.get(f.param) is not None
    ]
    if capacity_given and preset is None and flags.get("max_inflight") is None:
        return (
            f"--max-inflight is required with {', '.join(capacity_given)}"
            " (or choose a --capacity-preset; see 'obol sell presets')"
        )
    return None


def merge_max_in_flight(flags: dict[str, Any]) -> None:
    """``--max-in-flight`` (obol-stack's spelling, also written to ``spec.limits``) sets the same
    ceiling as ``--max-inflight``; both at once must agree."""
    obol, ours = flags.get("max_in_flight"), flags.get("max_inflight")
    if obol is None:
        return
    if ours is not None and ours != obol:
        raise click.UsageError(
            f"--max-in-flight {obol} and --max-inflight {ours} disagree: they are one ceiling"
        )
    flags["max_inflight"] = obol


def explain_problems(error: SpecError, flags: Mapping[str, Any], preset: Preset | None) -> str:
    """The SpecError as one line, each problem tagged with the flag (or preset) behind it."""
    parts = [str(problem) + _origin(problem, flags, preset) for problem in error.problems]
    return "invalid offer: " + "; ".join(parts)


_FIELD_BY_PATH: Mapping[str, FlagField] = {"spec." + ".".join(f.path): f for f in FLAG_FIELDS}
_METADATA_ORIGINS: Mapping[str, str] = {
    "metadata.name": "NAME",
    "metadata.namespace": "-n/--namespace",
}


def _origin(problem: FieldProblem, flags: Mapping[str, Any], preset: Preset | None) -> str:
    """`` [--flag]`` (or the preset that set the field) for a problem's path, else ``""``."""
    if problem.path in _METADATA_ORIGINS:
        return f" [{_METADATA_ORIGINS[problem.path]}]"
    field = _FIELD_BY_PATH.get(problem.path)
    if field is None:
        return ""
    if preset is not None and field.path[0] in _PRESET_SECTIONS and flags.get(field.param) is None:
        return f" [from preset {preset.name}; override with {field.flag}]"
    return f" [{field.flag}]"


# --- shell helpers -----------------------------------------------------------------------------


def _load_registry(path: str | None) -> AssetRegistry:
    """The registry the hook would use: built-in, extended by the operator's file if named."""
    try:
        return load_asset_registry(path) or BUILTIN_REGISTRY
    except ConfigError as exc:
        raise CliError(f"invalid asset registry file: {exc}", EXIT_INVALID) from None


def _preset_named(name: str | None) -> Preset | None:
    if name is None:
        return None
    presets = load_presets()
    if name not in presets:
        raise click.BadParameter(
            f"unknown preset {name!r}; known: {', '.join(presets)} (see 'obol sell presets')",
            param_hint="--capacity-preset",
        )
    return presets[name]


def _dump(document: Any, output: str) -> str:
    if output == "json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def quote_line(payment: ResolvedPayment) -> str:
    """What a buyer is quoted for one request (the 402's amount), with how it was computed."""
    network = payment.network
    return (
        f"Quote: buyers pay {payment.quote_amount} {payment.asset.symbol} per request on"
        f" {network.name} ({network.caip2}) to {payment.pay_to}: {payment.summary}, quoted as"
        f" {payment.quote_basis}"
    )


def warn(warnings: Sequence[str]) -> None:
    """Each warning as its own ``Warning: ...`` line on stderr."""
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)


F = TypeVar("F", bound=Callable[..., Any])


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Apply click option decorators so that they appear in ``--help`` in the order given."""

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


# --kubectl and --context, shared by every command that talks to the cluster (also obol crd).
kubectl_options = _options(
    click.option(
        "--kubectl",
        "kubectl_path",
        envvar=KUBECTL_ENV,
        default="kubectl",
        show_envvar=True,
        metavar="PATH",
        help="kubectl executable (default: kubectl on PATH).",
    ),
    click.option(
        "--context",
        "kube_context",
        metavar="CTX",
        help="kubeconfig context to use (passed to kubectl).",
    ),
)


def _lower(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Network names are case-insensitive, as in obol-stack's CLI (Base, BASE-SEPOLIA).
    return None if value is None else value.lower()


def _asset_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Symbols are case-insensitive (USDC, Obol); a 0x address keeps its checksum case.
    if value is None or value.lower().startswith("0x"):
        return value
    return value.lower()


_upstream_options = _options(
    click.argument("name", required=False),
    click.option(
        "--upstream",
        metavar="SVC",
        help="In-cluster Service that reaches the external server (required).",
    ),
    click.option(
        "--upstream-namespace",
        metavar="NS",
        help="Namespace of that Service (default: the offer's namespace).",
    ),
    click.option(
        "-n",
        "--namespace",
        metavar="NS",
        help="Namespace of the offer (default: kubectl's current namespace).",
    ),
    click.option(
        "--port",
        type=int,
        metavar="P",
        help="Service port (default: the --runtime's usual port; else 8080 for http,"
        " 11434 for inference, as obol-stack).",
    ),
    click.option(
        "--health-path",
        metavar="PATH",
        help="Path answering 2xx when the upstream is healthy (CRD default /health).",
    ),
    click.option(
        "--path",
        metavar="PATH",
        help="Public path of the offer (default /services/NAME); the route prefix and the"
        " pricing pattern.",
    ),
)

_inference_options = _options(
    click.option(
        "--runtime",
        type=click.Choice(list(RUNTIME_PORTS), case_sensitive=False),
        help="Server runtime: implies protocol openai-chat (unless --protocol) and, without"
        " --port, its usual port (openai/vllm 8000, llama.cpp 8080, ollama 11434).",
    ),
    click.option(
        "--protocol",
        type=click.Choice(INFERENCE_PROTOCOLS),
        help="Wire protocol the upstream speaks (advertised to buyers).",
    ),
    click.option(
        "--streaming/--no-streaming",
        default=None,
        help="Whether responses stream (SSE); streaming disables body buffering.",
    ),
    click.option(
        "--context-window", type=int, metavar="N", help="Context window of the model, in tokens."
    ),
)

_payment_options = _options(
    click.option(
        "--network",
        "--chain",
        "network",
        metavar="NET",
        callback=_lower,
        help="Payment network: base (default), base-sepolia, ethereum, ... or eip155:<id>.",
    ),
    click.option(
        "--pay-to",
        "--wallet",
        "--recipient",
        "-w",
        "pay_to",
        metavar="0x..",
        help=f"Address receiving payments (default: ${X402_WALLET}).",
    ),
    click.option(
        "--payment-asset",
        "--token",
        "payment_asset",
        metavar="usdc|obol|0x..",
        callback=_asset_name,
        help="Token buyers pay in (default usdc).",
    ),
    click.option(
        "--price",
        "--per-request",
        "price",
        metavar="DEC",
        help='Price per request in whole tokens, e.g. "0.001".',
    ),
    click.option(
        "--per-mtok", metavar="DEC", help="Price per million tokens; --price becomes optional."
    ),
    click.option(
        "--per-hour",
        metavar="DEC",
        help="obol-stack's hourly price, charged per request as its verifier does.",
    ),
    click.option(
        "--max-timeout",
        type=int,
        metavar="S",
        help="Seconds a signed payment stays valid (CRD default 300).",
    ),
    click.option(
        "--asset-registry-file",
        envvar=ASSET_REGISTRY_FILE,
        show_envvar=True,
        metavar="FILE",
        help="Operator registry file extending the built-in assets.",
    ),
)

_capacity_options = _options(
    click.option(
        "--capacity-preset",
        metavar="NAME",
        help="Expand a preset into static limits (see 'obol sell presets');"
        " explicit flags override it. Nothing is autoscaled.",
    ),
    click.option(
        "--gpu-count",
        type=int,
        metavar="N",
        help="GPUs behind the upstream (declared metadata, never a scaling input).",
    ),
    click.option(
        "--max-inflight",
        type=int,
        metavar="N",
        help="Most requests served at once; more get 429. Required with any"
        " other capacity flag unless a preset sets it.",
    ),
    click.option(
        "--max-in-flight",
        type=int,
        metavar="N",
        help="obol-stack's spelling of --max-inflight: the same ceiling, also written to"
        " spec.limits.maxInFlight so obol-stack's controller reads the same limit.",
    ),
    click.option(
        "--rps",
        type=int,
        metavar="N",
        help="Most requests per second for the whole offer (spec.limits.rps, obol-stack's"
        " field; burst twice that); more get 429 before the payment gate.",
    ),
    click.option(
        "--per-buyer-max-inflight",
        type=int,
        metavar="N",
        help="Most requests one payer may have in flight (<= --max-inflight).",
    ),
    click.option(
        "--retry-after", type=int, metavar="S", help="Retry-After seconds on 429 (CRD default 2)."
    ),
    click.option(
        "--max-input-tokens", type=int, metavar="N", help="Largest prompt, in tokens (advertised)."
    ),
    click.option(
        "--max-output-tokens",
        type=int,
        metavar="N",
        help="Largest completion, in tokens (advertised).",
    ),
    click.option(
        "--max-body-bytes",
        type=int,
        metavar="N",
        help="Largest request body; enforced with 413 unless streaming.",
    ),
)


def _refuse_obol_only(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A callback for obol-stack flags whose meaning this project does not implement."""
    if value is None or value is False or value == ():
        return
    flag = max(param.opts, key=len)
    if flag in _GATEWAY_FLAGS:
        raise CliError(
            f"{flag} belongs to obol-stack's host-side inference gateway ('obol sell inference"
            " --model'), which this project does not run: run the inference server yourself,"
            " give it an in-cluster Service and pass --upstream SVC (with --runtime or --port)",
            EXIT_USAGE,
        )
    raise CliError(
        f"{flag} is obol-stack's ERC-8004 registration, which this project does not do:"
        " register with obol-stack's 'obol sell register', or keep the metadata in"
        " spec.registration with --from-json (--no-register is accepted)",
        EXIT_USAGE,
    )


def _obol_only(*names: str, is_flag: bool = False, multiple: bool = False) -> Any:
    return click.option(
        *names,
        is_flag=is_flag,
        multiple=multiple,
        hidden=True,
        expose_value=False,
        callback=_refuse_obol_only,
    )


_REGISTRATION_FLAGS = (
    ("--register", True, False),
    ("--register-name", False, False),
    ("--register-description", False, False),
    ("--description", False, False),
    ("--register-image", False, False),
    ("--register-skills", False, True),
    ("--register-domains", False, True),
    ("--register-metadata", False, True),
)
_GATEWAY_FLAGS = frozenset(
    (
        "--model",
        "--listen",
        "--facilitator",
        "--enclave-tag",
        "--vm",
        "--vm-image",
        "--vm-cpus",
        "--vm-memory",
        "--vm-host-port",
        "--tee",
        "--model-hash",
    )
)
_registration_options = _options(
    click.option(
        "--no-register",
        is_flag=True,
        expose_value=False,
        help="Accepted for obol-stack's habits: this project never registers offers on ERC-8004.",
    ),
    *(_obol_only(name, is_flag=flag, multiple=many) for name, flag, many in _REGISTRATION_FLAGS),
)
_gateway_options = _options(
    *(_obol_only(name, is_flag=name == "--vm") for name in sorted(_GATEWAY_FLAGS))
)

_output_options = _options(
    click.option(
        "--from-json",
        metavar="FILE|-",
        help="Read the spec from a JSON file (- for stdin): a raw spec or a whole ServiceOffer,"
        " as obol-stack's --from-json; NAME and -n win over its metadata. Takes no spec flags.",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Print the ServiceOffer instead of applying it; never writes (a limits-only change"
        " reads the existing offer). kubectl's --dry-run=client is the same; --dry-run=none"
        " applies.",
    ),
    click.option(
        "-o",
        "--output",
        type=click.Choice(["yaml", "json"]),
        help="Dry-run output format (default yaml).",
    ),
)

_SELL_EPILOG = """\b
Examples:
  obol sell presets
  obol sell inference qwen --upstream vllm --port 8000 -n llm --runtime openai \\
    --network base --pay-to 0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31 --price 0.002 \\
    --capacity-preset external-vllm-1gpu-balanced --dry-run
  obol sell status qwen -n llm
  obol sell list -A

\b
Exit codes:
  0 success            4 kubectl not found
  1 kubectl failed     5 cluster unreachable
  2 usage error        6 ServiceOffer CRD not installed
  3 invalid offer      7 offer not found

\b
Capacity is always declared by the seller (mode external-static); nothing is autoscaled.
"""

_INFERENCE_EPILOG = """\b
Examples:
  # Preview a vLLM offer on one GPU, priced per request, with a preset envelope
  obol sell inference qwen --upstream vllm --port 8000 -n llm \\
    --runtime openai --network base --pay-to 0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31 \\
    --price 0.002 --capacity-preset external-vllm-1gpu-balanced --dry-run

\b
  # Apply it with an explicit envelope instead: 8 in flight, 2 per buyer
  obol sell inference qwen --upstream vllm --port 8000 -n llm --streaming \\
    --network base --pay-to 0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31 \\
    --price 0.002 --per-mtok 0.50 --gpu-count 1 --max-inflight 8 --per-buyer-max-inflight 2

\b
Without any capacity flag or preset the offer has no capacity envelope (no admission limit).
Presets and capacity flags only declare static limits; nothing is autoscaled.
"""

_HTTP_EPILOG = """\b
Examples:
  # A plain paid HTTP API, no capacity envelope
  obol sell http weather-api --upstream weather --port 8080 -n tenant-a \\
    --network base-sepolia --pay-to 0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31 --price 0.0001

\b
  # The same, at most 4 requests at once, previewed as JSON
  obol sell http weather-api --upstream weather --port 8080 -n tenant-a \\
    --network base-sepolia --pay-to 0x4A6F2B3d9E2B8f1C0A7e5d3B1c9F8E7D6C5b4A31 --price 0.0001 \\
    --max-inflight 4 --dry-run -o json
"""

_PRESETS_EPILOG = """\b
Examples:
  obol sell presets
  obol sell presets -o yaml

\b
A preset only fills spec.capacity (mode external-static) and spec.requestLimits with static,
seller-declared numbers; explicit flags override them. Nothing is autoscaled.
"""

_STATUS_EPILOG = """\b
Examples:
  obol sell status qwen -n llm
  obol sell status -A
  obol sell status qwen -n llm -o json

\b
In flight is Unknown unless the hook observed it; capacity is declared, never autoscaled.
"""

_LIST_EPILOG = """\b
Examples:
  obol sell list
  obol sell list -n llm
  obol sell list -A -o yaml
"""


@click.group(epilog=_SELL_EPILOG)
def sell() -> None:
    """Create and inspect x402-paid ServiceOffers with kubectl."""


def _sell_offer(offer_type: str, params: dict[str, Any]) -> None:
    """The body of ``sell inference`` and ``sell http``: build, validate, print or apply."""
    name, namespace = params.pop("name"), params.pop("namespace")
    dry_run, output = params.pop("dry_run"), params.pop("output")
    from_json = params.pop("from_json")
    kubectl = Kubectl(params.pop("kubectl_path"), params.pop("kube_context"))
    if output is not None and not dry_run:
        raise click.UsageError("-o/--output only applies with --dry-run")
    if from_json is not None:
        offer = _offer_from_json(name, namespace, offer_type, from_json, params)
    elif name is None:
        raise click.UsageError("missing argument NAME")
    else:
        offer = _validated_offer(name, namespace, offer_type, params, kubectl)
    metadata = offer.manifest["metadata"]
    name, namespace = metadata["name"], metadata.get("namespace")
    warn(offer.warnings)
    # What buyers will be asked to pay, which may differ from the prices typed (the verifier
    # charges the first price set): on stderr, so the manifest stays clean.
    quote = quote_line(offer.payment)
    if dry_run:
        click.echo(quote, err=True)
        click.echo(_dump(offer.manifest, output or "yaml"), nl=False)
        return
    applied = kubectl.apply(offer.manifest)
    click.echo(quote, err=True)
    click.echo(applied or f"{api.PLURAL}.{api.GROUP}/{name} applied")
    where = f" -n {namespace}" if namespace else ""
    click.echo(f"Check status: obol sell status {name}{where}")


def _validated_offer(
    name: str, namespace: str | None, offer_type: str, params: dict[str, Any], kubectl: Kubectl
) -> ValidatedOffer:
    preset = _preset_named(params.pop("capacity_preset"))
    registry_file = params.pop("asset_registry_file")
    runtime = params.pop("runtime", None)
    merge_max_in_flight(params)
    if runtime is None and capacity_only(params, preset):
        return _capacity_change(name, namespace, offer_type, params, preset, registry_file, kubectl)
    notes = fill_defaults(offer_type, params, runtime.lower() if runtime else None)
    problem = usage_problem(params, preset)
    if problem is not None:
        raise click.UsageError(problem)
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    manifest = offer_manifest(name, namespace, offer_type, params, preset)
    return written_offer(manifest, registry_file, params, preset, always=True)


def written_offer(
    manifest: dict[str, Any],
    registry_file: str | None,
    flags: Mapping[str, Any],
    preset: Preset | None,
    *,
    always: bool,
) -> ValidatedOffer:
    """The offer ``obol sell`` writes: validated, with ``payment.asset`` resolved into
    obol-stack's object form, the only form its verifier can decode (one offer it cannot decode
    stops its route updates for every offer: docs/verifier-contract.md). ``always``: write the
    object even where the offer names no asset (the flags' offers); otherwise only a string is
    replaced (an offer read back or from --from-json keeps its shape). Validated again so the
    object is checked like any offer's and keeps the model's key order. A problem is one line
    naming the flag (or preset) behind each field, exit 3."""
    registry = _load_registry(registry_file)
    settings = configured(load_settings)
    try:
        validated = validate_manifest(manifest, registry, settings)
        payment = manifest["spec"].get("payment")
        declared = payment.get("asset") if isinstance(payment, dict) else None
        if not (isinstance(declared, str) or (always and declared is None)):
            return validated
        asset = validated.payment.asset
        if isinstance(declared, str):
            click.echo(
                f"Note: payment.asset {declared!r} written as {asset.symbol}'s object form"
                " (obol-stack's verifier cannot decode the string form)",
                err=True,
            )
        manifest["spec"]["payment"]["asset"] = asset.offer_object()
        return validate_manifest(manifest, registry, settings)
    except SpecError as exc:
        raise CliError(explain_problems(exc, flags, preset), EXIT_INVALID) from None


_LIMIT_SECTIONS = ("capacity", "requestLimits", "limits")


def capacity_only(flags: Mapping[str, Any], preset: Preset | None) -> bool:
    """True when the flags change limits only (a preset, capacity, request-limit or
    ``spec.limits`` flags) and set nothing else: a change to an existing offer."""
    limits_given = preset is not None or any(
        flags.get(f.param) is not None for f in FLAG_FIELDS if f.path[0] in _LIMIT_SECTIONS
    )
    others = [f for f in FLAG_FIELDS if f.path[0] not in _LIMIT_SECTIONS]
    return limits_given and all(flags.get(f.param) is None for f in others)


def changed_limits(
    spec: Mapping[str, Any], flags: Mapping[str, Any], preset: Preset | None
) -> dict[str, Any]:
    """An existing offer's spec with only its limits changed (pure).

    A preset replaces the capacity envelope and request limits (explicit flags win over it);
    without one, the flags change only the fields they name. ``spec.limits.maxInFlight``, when
    the offer has it, follows the new ceiling: it is the same limit.
    """
    changed = dict(spec)
    capacity_flags = _section_flags(flags, "capacity")
    request_flags = _section_flags(flags, "requestLimits")
    if preset is not None:
        capacity, request_limits = expand_limits(preset, capacity_flags, request_flags)
    else:
        capacity = _overlay(spec.get("capacity"), capacity_flags, {"mode": CAPACITY_MODE})
        request_limits = _overlay(spec.get("requestLimits"), request_flags, {})
    if capacity is not None:
        changed["capacity"] = capacity
    if request_limits is not None:
        changed["requestLimits"] = request_limits
    limits = _overlay(spec.get("limits"), _section_flags(flags, "limits"), {})
    if limits is not None:
        if capacity is not None and "maxInFlight" in limits:
            limits["maxInFlight"] = capacity.get("maxInFlight")
        changed["limits"] = limits
    return changed


def _overlay(
    current: Any, flags: Mapping[str, Any], base: Mapping[str, Any]
) -> dict[str, Any] | None:
    given = {key: value for key, value in flags.items() if value is not None}
    existing = dict(current) if isinstance(current, Mapping) else None
    if not given:
        return existing
    return {**(existing if existing is not None else base), **given}


def _capacity_change(
    name: str,
    namespace: str | None,
    offer_type: str,
    params: dict[str, Any],
    preset: Preset | None,
    registry_file: str | None,
    kubectl: Kubectl,
) -> ValidatedOffer:
    """Only limits were given: change them on the existing offer, keeping everything else; an
    offer that does not exist yet needs the options of a new one."""
    try:
        (existing,) = kubectl.get_offers(name=name, namespace=namespace)
    except OfferNotFound:
        wanted = dict(params)
        fill_defaults(offer_type, wanted, None)
        where = f" in namespace {namespace}" if namespace else ""
        raise click.UsageError(
            "missing required options: " + "; ".join(missing_options(wanted)) + f" (no"
            f" ServiceOffer {name} exists{where} whose capacity this could change)"
        ) from None
    stored = existing.get("spec")
    spec: Mapping[str, Any] = stored if isinstance(stored, dict) else {}
    stored_namespace = (existing.get("metadata") or {}).get("namespace") or namespace
    click.echo(
        f"Note: changing only the limits of ServiceOffer {stored_namespace}/{name}: price, payTo,"
        " upstream and everything else are kept",
        err=True,
    )
    manifest = _manifest(name, stored_namespace or None, changed_limits(spec, params, preset))
    return written_offer(manifest, registry_file, params, preset, always=False)


# Far above any spec: a bigger --from-json input is refused before it is parsed.
MAX_JSON_INPUT_BYTES = 1024 * 1024


def _offer_from_json(
    name: str | None,
    namespace: str | None,
    offer_type: str,
    source: str,
    params: dict[str, Any],
) -> ValidatedOffer:
    """``--from-json FILE|-``: the offer is the file's spec (a raw spec, or a whole ServiceOffer
    whose spec is taken), as obol-stack's CLI reads it; validated like any other offer."""
    given = [f.flag for f in FLAG_FIELDS if params.get(f.param) is not None]
    given += [
        flag
        for flag, param in (("--capacity-preset", "capacity_preset"), ("--runtime", "runtime"))
        if params.get(param) is not None
    ]
    if given:
        raise click.UsageError(f"--from-json takes the whole spec; drop {', '.join(given)}")
    document = load_json_input(source)
    # A whole ServiceOffer has a spec (a spec never has one): its spec, kind and metadata count.
    whole = document if "spec" in document else {"spec": document}
    spec, found = whole["spec"], whole.get("metadata")
    metadata: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if not isinstance(spec, dict):
        raise CliError(f"--from-json {source}: spec must be a JSON object", EXIT_INVALID)
    name = name or metadata.get("name")
    namespace = namespace or metadata.get("namespace")
    if not isinstance(name, str) or not name:
        raise click.UsageError("missing argument NAME (or metadata.name in the --from-json input)")
    manifest = _manifest(name, namespace or None, {"type": offer_type, **spec})
    # A whole ServiceOffer's own apiVersion and kind are validated, not replaced.
    manifest.update((key, whole[key]) for key in ("apiVersion", "kind") if key in whole)
    return written_offer(manifest, params.get("asset_registry_file"), {}, None, always=False)


def load_json_input(source: str) -> dict[str, Any]:
    """The JSON object in file ``source`` (``-``: stdin), read with a size and time bound."""
    try:
        data = read_source(source, MAX_JSON_INPUT_BYTES)
    except CliError as exc:
        raise CliError(f"--from-json {exc.message}", EXIT_INVALID) from None
    if len(data) > MAX_JSON_INPUT_BYTES:
        raise CliError(
            f"--from-json {source}: larger than {MAX_JSON_INPUT_BYTES} bytes", EXIT_INVALID
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"--from-json {source}: not UTF-8 text", EXIT_INVALID) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--from-json {source}: not valid JSON: {exc}", EXIT_INVALID) from None
    if not isinstance(document, dict):
        raise CliError(
            f"--from-json {source}: must be a JSON object (a spec or a whole ServiceOffer),"
            f" got {type(document).__name__}",
            EXIT_INVALID,
        )
    return document


class _KubectlDryRun(click.Command):
    """A command that also takes kubectl's spellings ``--dry-run=client`` and ``=none``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, [_dry_run_flag(arg) for arg in args if arg != _NO_DRY_RUN])


_NO_DRY_RUN = "--dry-run=none"


def _dry_run_flag(arg: str) -> str:
    if not arg.startswith("--dry-run="):
        return arg
    value = arg.partition("=")[2]
    if value == "client":
        return "--dry-run"
    if value == "server":
        raise click.UsageError(
            "--dry-run=server is not supported: pipe the client dry run into the API server,"
            " e.g. obol sell ... --dry-run | kubectl apply --dry-run=server -f -"
        )
    raise click.UsageError(f"--dry-run must be client or none (got {value!r})")


@sell.command(cls=_KubectlDryRun, epilog=_INFERENCE_EPILOG)
@_upstream_options
@_inference_options
@_payment_options
@_capacity_options
@_registration_options
@_gateway_options
@_output_options
@kubectl_options
def inference(**params: Any) -> None:
    """Sell an OpenAI-compatible inference server (type: inference)."""
    _sell_offer("inference", params)


@sell.command(cls=_KubectlDryRun, epilog=_HTTP_EPILOG)
@_upstream_options
@_payment_options
@_capacity_options
@_registration_options
@_output_options
@kubectl_options
def http(**params: Any) -> None:
    """Sell a plain HTTP API (type: http)."""
    _sell_offer("http", params)


@sell.command(epilog=_PRESETS_EPILOG, short_help="List the capacity presets.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "yaml", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
def presets(output: str) -> None:
    """List the capacity presets (static limits only; nothing is autoscaled)."""
    known = load_presets()
    if output != "table":
        click.echo(_dump([preset.as_document() for preset in known.values()], output), nl=False)
        return
    click.echo(format_table(PRESET_COLUMNS, preset_rows(known)), nl=False)
    click.echo()
    click.echo(NO_AUTOSCALING_NOTE)


_namespace_options = _options(
    click.option(
        "-n",
        "--namespace",
        metavar="NS",
        help="Namespace to read (default: kubectl's current namespace).",
    ),
    click.option("-A", "--all-namespaces", is_flag=True, help="Read every namespace."),
)


def _show_offers(
    params: dict[str, Any],
    record: Callable[[OfferView], dict[str, Any]],
    table: Callable[[list[OfferView]], str],
) -> None:
    """Read offers with kubectl and print them as a table or as records (``-o json|yaml``)."""
    name = params.get("name")  # `sell list` has no NAME argument
    namespace, all_namespaces = params["namespace"], params["all_namespaces"]
    if namespace and all_namespaces:
        raise click.UsageError("give -n/--namespace or -A/--all-namespaces, not both")
    if name and all_namespaces:
        raise click.UsageError("a named offer needs -n/--namespace, not -A/--all-namespaces")
    kubectl = Kubectl(params["kubectl_path"], params["kube_context"])
    offers = kubectl.get_offers(name=name, namespace=namespace, all_namespaces=all_namespaces)
    views = [offer_view(obj) for obj in offers]
    if params["output"] != "table":
        records = [record(view) for view in views]
        click.echo(_dump(records[0] if name and records else records, params["output"]), nl=False)
    elif views:
        click.echo(table(views), nl=False)
    else:
        where = (
            "any namespace"
            if all_namespaces
            else f"namespace {namespace}"
            if namespace
            else "the current namespace"
        )
        click.echo(f"No ServiceOffers found in {where}.", err=True)


_output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="Output format.",
)


@sell.command(epilog=_STATUS_EPILOG, short_help="Show offers in detail.")
@click.argument("name", required=False)
@_namespace_options
@_output_option
@kubectl_options
def status(**params: Any) -> None:
    """Show endpoint, price, capacity envelope and conditions of offers."""
    _show_offers(params, status_record, status_text)


@sell.command("list", epilog=_LIST_EPILOG, short_help="One line per offer.")
@_namespace_options
@_output_option
@kubectl_options
def list_offers(**params: Any) -> None:
    """One line per offer: namespace, name, type, price, network, max in-flight, capacity, ready."""
    _show_offers(params, list_record, _list_table)


def _list_table(views: list[OfferView]) -> str:
    return format_table(LIST_COLUMNS, [list_row(view) for view in views])

"""The asset registry: which networks and tokens an offer may be priced in.

A ``ServiceOffer`` names its payment network (``spec.payment.network``) and asset
(``spec.payment.asset``) in seller-friendly terms: ``base``, ``eip155:8453``, ``usdc``, ``obol``
or a token address. This module turns those into the exact facts buyers sign against: chain id,
CAIP-2 id, token contract, decimals, transfer method (EIP-3009 or Permit2) and the token's EIP-712
domain name and version. A wrong domain name silently breaks every signature, so the built-in
table only holds values confirmed from primary sources, and unit tests pin each domain separator.

This module is pure core. It must never do I/O (no files, no environment, no network, no clock, no
randomness) and it is deterministic. Reading an operator's registry file is the shell's job::

    document = yaml.safe_load(path.read_text())
    registry = BUILTIN_REGISTRY.extend(document or {}, source=str(path))

The registry file is validated by strict pydantic models (one per part of the file), worded in
this module's own terms; every input problem raises :class:`hooks.core.errors.SpecError` with the
field path, the reason and the offending value.

The built-in table (:data:`BUILTIN_REGISTRY`, at the end) comes from the x402 SDK default-asset
tables (``typescript/packages/mechanisms/evm/src/shared/defaultAssets.ts``,
``python/x402/mechanisms/evm/constants.py``), obol-stack's ``internal/x402/chains.go`` and
``tokens.go``, and the Obol token docs. Every built-in network has USDC with a confirmed EIP-712
domain; a network without one (polygon-amoy, avalanche-fuji: no x402 SDK table lists their
USDC's domain) is left out, because an offer there could never resolve an asset; an operator who
has checked the token on chain adds network and token in the registry file.

Registry file format (YAML; both lists optional, unknown keys rejected)::

    networks:
      - name: optimism            # required; lowercase letters, digits, '-'; starts with a letter
        chainId: 10               # required; positive integer; CAIP-2 id becomes eip155:10
        aliases: [op-mainnet]     # optional; other names for it (default: none)
        testnet: false            # optional (default: false)
    assets:
      - symbol: USDC              # required; letters, digits, '.', '-', '_'; starts with a letter
        network: optimism         # required; name, alias or CAIP-2 id (built-in or listed above)
        address: "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85"   # required; 0x + 40 hex digits
        decimals: 6               # required; integer 0-255
        transferMethod: eip3009   # required; eip3009 | permit2
        eip712Name: USD Coin      # required; the token's EIP-712 domain name, exactly
        eip712Version: "2"        # required; a string (quote numbers)
        eip2612GasSponsoring: false   # optional (default: false); only with permit2
        testAsset: false          # optional (default: false); true = resolvable by address only

Overrides: a network entry whose name is already known replaces that network's aliases and testnet
flag (its chainId must stay the same). An asset entry replaces any registered token on the same
network with the same address, or with the same symbol when both are non-test tokens, so an operator
can correct a domain or move a symbol to another contract. Within one file, each network and each
token may appear once. All problems in a file are reported together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from hooks.core.errors import FieldProblem, SpecError

TransferMethod = Literal["eip3009", "permit2"]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
ZERO_ADDRESS = "0x" + "0" * 40


@dataclass(frozen=True)
class Network:
    """An EVM chain payments can settle on."""

    name: str
    chain_id: int
    caip2: str
    aliases: tuple[str, ...] = ()
    testnet: bool = False


@dataclass(frozen=True)
class Asset:
    """A token on one network, with everything a buyer needs to sign a payment in it."""

    symbol: str
    network: str
    address: str
    decimals: int
    transfer_method: TransferMethod
    eip712_name: str
    eip712_version: str
    eip2612_gas_sponsoring: bool = False
    test_asset: bool = False

    def offer_object(self) -> dict[str, Any]:
        """``spec.payment.asset`` in obol-stack's object form (its ServiceOfferAsset keys), the
        only form obol-stack's verifier can decode; ``status.payment.asset`` holds the same."""
        return {
            "symbol": self.symbol,
            "address": self.address,
            "decimals": self.decimals,
            "transferMethod": self.transfer_method,
            "eip712Name": self.eip712_name,
            "eip712Version": self.eip712_version,
        }


class AssetRegistry:
    """An immutable set of networks and tokens, with lookups that explain their failures."""

    __slots__ = ("_assets", "_by_address", "_by_key", "_networks")

    def __init__(self, networks: Iterable[Network] = (), assets: Iterable[Asset] = ()) -> None:
        self._networks: tuple[Network, ...] = tuple(networks)
        self._by_key: dict[str, Network] = {}
        for network in self._networks:
            for key in (network.name, network.caip2, *network.aliases):
                if key.lower() in self._by_key:
                    raise ValueError(f"network key {key!r} is used twice")
                self._by_key[key.lower()] = network
        order = {network.name: index for index, network in enumerate(self._networks)}
        listed = tuple(assets)
        for asset in listed:
            if asset.network not in order:
                raise ValueError(f"asset {asset.symbol} names unknown network {asset.network!r}")
        # Stable order: by network order, then by registration order within a network.
        self._assets: tuple[Asset, ...] = tuple(
            sorted(listed, key=lambda asset: order[asset.network])
        )
        self._by_address: dict[tuple[str, str], Asset] = {}
        for asset in self._assets:
            token_key = (asset.network, asset.address.lower())
            if token_key in self._by_address:
                raise ValueError(f"token {asset.address} is listed twice on {asset.network}")
            self._by_address[token_key] = asset

    def __repr__(self) -> str:
        return f"AssetRegistry({len(self._networks)} networks, {len(self._assets)} assets)"

    def networks(self) -> tuple[Network, ...]:
        """All networks: built-in ones first, then operator additions, in the order given."""
        return self._networks

    def assets(self) -> tuple[Asset, ...]:
        """All tokens, grouped by network in :meth:`networks` order, in registration order."""
        return self._assets

    def network(self, name_or_caip2: str, *, path: str = "spec.payment.network") -> Network:
        """Find a network by canonical name, alias (case-insensitive) or ``eip155:<chain id>``."""
        if not isinstance(name_or_caip2, str):
            raise SpecError.at(path, "must be a string naming a network", name_or_caip2)
        found = self._by_key.get(name_or_caip2.lower())
        if found is None:
            known = ", ".join(network.name for network in self._networks) or "none"
            raise SpecError.at(path, f"unknown network; known: {known}", name_or_caip2)
        return found

    def resolve(
        self, network: Network | str, asset: str = "usdc", *, path: str = "spec.payment.asset"
    ) -> Asset:
        """Find the token a seller means by ``asset`` (a symbol or a 0x address) on ``network``."""
        chain = network if isinstance(network, Network) else self.network(network)
        if not isinstance(asset, str):
            raise SpecError.at(path, "must be a string: a token symbol or a 0x address", asset)
        if _ADDRESS.fullmatch(asset):
            return self._resolve_address(chain, asset, path=path)
        if asset.lower().startswith("0x"):
            raise SpecError.at(path, "a token address must be 0x followed by 40 hex digits", asset)
        return self._resolve_symbol(chain, asset, path=path)

    def extend(
        self, document: Mapping[str, Any], *, source: str = "registry file"
    ) -> AssetRegistry:
        """Return a new registry with an operator's networks and tokens added or overridden.

        ``document`` is the already-parsed registry file (format in the module docstring);
        ``source`` names it in messages about the document as a whole.
        """
        return _RegistryDocument(self, source).apply(document)

    def registered(self, network: Network, address: str) -> Asset | None:
        """The registered token at ``address`` on ``network``, or None."""
        return self._by_address.get((network.name, address.lower()))

    def _on_network(self, chain: Network) -> list[Asset]:
        return [asset for asset in self._assets if asset.network == chain.name]

    def _resolve_address(self, chain: Network, address: str, *, path: str) -> Asset:
        found = self._by_address.get((chain.name, address.lower()))
        if found is not None:
            return found
        elsewhere = [asset for asset in self._assets if asset.address.lower() == address.lower()]
        if elsewhere:
            places = ", ".join(f"{asset.symbol} on {asset.network}" for asset in elsewhere)
            reason = f"that address is {places}, not a token registered on {chain.name}"
        else:
            reason = f"unknown token address on {chain.name}"
        known = ", ".join(f"{a.symbol} ({a.address})" for a in self._on_network(chain))
        if known:
            reason += f"; known on {chain.name}: {known}"
        reason += "; other tokens must first be added to the registry file by the operator"
        raise SpecError.at(path, reason, address)

    def _resolve_symbol(self, chain: Network, symbol: str, *, path: str) -> Asset:
        wanted = symbol.upper()
        on_network = self._on_network(chain)
        for asset in on_network:
            if asset.symbol.upper() == wanted and not asset.test_asset:
                return asset
        for asset in on_network:
            # On a testnet nothing of value is paid, so a test token may be named by symbol.
            if asset.symbol.upper() == wanted and asset.test_asset and chain.testnet:
                return asset
        test_tokens = [
            asset for asset in on_network if asset.symbol.upper() == wanted and asset.test_asset
        ]
        if test_tokens:
            addresses = ", ".join(asset.address for asset in test_tokens)
            reason = (
                f"{test_tokens[0].symbol} on {chain.name} is only a non-canonical test token; "
                f"give it by address ({addresses})"
            )
            raise SpecError.at(path, reason, symbol)
        elsewhere = _unique(
            asset.network
            for asset in self._assets
            if asset.symbol.upper() == wanted and not asset.test_asset
        )
        if elsewhere:
            display = next(a.symbol for a in self._assets if a.symbol.upper() == wanted)
            reason = (
                f"{display} is not deployed on {chain.name}; "
                f"{display} is available on {', '.join(elsewhere)}"
            )
            raise SpecError.at(path, reason, symbol)
        symbols = _unique(asset.symbol.lower() for asset in on_network if not asset.test_asset)
        choices = ", ".join([*symbols, "or a registered 0x token address"])
        raise SpecError.at(path, f"unknown asset on {chain.name}; known: {choices}", symbol)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class _Entry(BaseModel):
    """Strict shape of a registry file's parts: camelCase keys only, no coercion. Unknown keys
    are reported by :meth:`_RegistryDocument._validated`, before the fields, and do not stop the
    entry's other checks."""

    model_config = ConfigDict(alias_generator=to_camel, extra="ignore", strict=True, frozen=True)


_NAME = r"^[a-z][a-z0-9-]*$"
_SYMBOL = r"^[A-Za-z][A-Za-z0-9._-]{0,15}$"
_TOKEN_ADDRESS = f"^{_ADDRESS.pattern}$"
_NON_BLANK = r"\S"
_PATTERN_REASONS: Mapping[str, str] = {
    _NAME: "must be lowercase letters, digits and '-', starting with a letter",
    _SYMBOL: "must be 1-16 letters, digits, '.', '-' or '_', starting with a letter",
    _TOKEN_ADDRESS: "must be 0x followed by 40 hex digits",
    _NON_BLANK: "must be a non-empty string",
}
_NetworkName = Annotated[str, Field(pattern=_NAME)]
_Text = Annotated[str, Field(pattern=_NON_BLANK)]


class _NetworkEntry(_Entry):
    name: _NetworkName
    chain_id: Annotated[int, Field(gt=0)]
    aliases: list[_NetworkName] = []
    testnet: bool = False


class _AssetEntry(_Entry):
    symbol: Annotated[str, Field(pattern=_SYMBOL)]
    network: _Text
    address: Annotated[str, Field(pattern=_TOKEN_ADDRESS)]
    decimals: Annotated[int, Field(ge=0, le=255)]
    transfer_method: TransferMethod
    eip712_name: _Text
    eip712_version: _Text
    eip2612_gas_sponsoring: bool = False
    test_asset: bool = False

    @field_validator("network")
    @classmethod
    def _known_network(cls, value: str, info: ValidationInfo) -> str:
        registry: AssetRegistry = (info.context or {})["networks"]
        try:
            return registry.network(value).name
        except SpecError as error:
            raise ValueError(error.problems[0].reason) from None

    @field_validator("address")
    @classmethod
    def _not_zero(cls, value: str) -> str:
        if value.lower() == ZERO_ADDRESS:
            raise ValueError("must not be the zero address")
        return value


class _RegistryFile(_Entry):
    networks: list[Any] | None = None
    assets: list[Any] | None = None


# Fields with one reason for any problem; text fields are explained by the check they failed.
_FIELD_REASONS: Mapping[str, str] = {
    "networks": "must be a list",
    "assets": "must be a list",
    "chainId": "must be a positive integer",
    "aliases": "must be a list of names",
    "decimals": "must be an integer 0-255",
    "transferMethod": "must be eip3009 or permit2",
    "testnet": "must be true or false",
    "eip2612GasSponsoring": "must be true or false",
    "testAsset": "must be true or false",
}
_SHAPES: Mapping[str, type[_Entry]] = {
    "": _RegistryFile,
    "networks": _NetworkEntry,
    "assets": _AssetEntry,
}
_KEYS: Mapping[str, tuple[str, ...]] = {
    section: tuple(str(field.alias) for field in shape.model_fields.values())
    for section, shape in _SHAPES.items()
}
_REQUIRED: Mapping[str, frozenset[str]] = {
    section: frozenset(str(f.alias) for f in shape.model_fields.values() if f.is_required())
    for section, shape in _SHAPES.items()
}


def _reason(section: str, error: Any) -> str:
    """The registry file's own wording for one pydantic error in ``section``."""
    kind, loc = error["type"], error["loc"]
    if kind == "missing" or (error["input"] is None and loc and loc[-1] in _REQUIRED[section]):
        return "is required"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if not loc:  # the entry itself
        return "must be a mapping"
    if isinstance(loc[-1], int):  # an alias
        return _PATTERN_REASONS[_NAME]
    if loc[-1] in _FIELD_REASONS:
        return _FIELD_REASONS[loc[-1]]
    if kind == "string_pattern_mismatch" and error["input"].strip():
        return _PATTERN_REASONS[error["ctx"]["pattern"]]
    hint = " (quote it in YAML)" if isinstance(error["input"], int | float) else ""
    return f"must be a non-empty string{hint}"


class _RegistryDocument:
    """Validates one registry document against a base registry and builds the extended one."""

    def __init__(self, base: AssetRegistry, source: str) -> None:
        self.base = base
        self.source = source
        self.problems: list[FieldProblem] = []

    def fail(self, path: str, reason: str, value: Any = None) -> None:
        self.problems.append(FieldProblem(path, reason, value))

    def apply(self, document: Mapping[str, Any]) -> AssetRegistry:
        if not isinstance(document, Mapping):
            raise SpecError.at(
                self.source,
                "must be a mapping with optional 'networks' and 'assets' lists",
                document,
            )
        # Problems at the top level are reported, and whichever sections are lists still checked.
        self._validated(document, "", "")
        networks = self._merge_networks(_list(document.get("networks")))
        assets = self._merge_assets(AssetRegistry(networks), _list(document.get("assets")))
        if self.problems:
            raise SpecError(sorted(self.problems, key=_document_order))
        return AssetRegistry(networks, assets)

    def _validated(self, entry: Any, path: str, section: str, context: Any = None) -> Any:
        """``entry`` as its section's model, or None with every problem reported under ``path``
        (unknown keys first)."""
        allowed = _KEYS[section]
        for key in entry if isinstance(entry, Mapping) else ():
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, f"unknown field; allowed: {', '.join(allowed)}")
        try:
            return _SHAPES[section].model_validate(entry, context=context)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = error["loc"]
                where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
                reason = _reason(section, error)
                value = None if reason == "is required" else error["input"]
                self.fail(where.lstrip("."), reason, value)
            return None

    # -- networks ------------------------------------------------------------------------------

    def _merge_networks(self, entries: list[Any]) -> list[Network]:
        merged = list(self.base.networks())
        seen_in_document: dict[str, str] = {}
        for index, entry in enumerate(entries):
            path = f"networks[{index}]"
            network = self._network_entry(path, entry, merged)
            if network is None:
                continue
            if network.name in seen_in_document:
                self.fail(
                    f"{path}.name", f"duplicates {seen_in_document[network.name]}", network.name
                )
                continue
            seen_in_document[network.name] = path
            clash = self._key_clash(network, merged)
            if clash is not None:
                field, reason, value = clash
                self.fail(f"{path}.{field}", reason, value)
                continue
            positions = [i for i, known in enumerate(merged) if known.name == network.name]
            if positions:
                merged[positions[0]] = network
            else:
                merged.append(network)
        return merged

    def _network_entry(self, path: str, entry: Any, known: list[Network]) -> Network | None:
        shape: _NetworkEntry | None = self._validated(entry, path, "networks")
        before = len(self.problems)
        aliases = self._unrepeated_aliases(path, entry)
        if shape is None or len(self.problems) > before:
            return None
        name, chain_id, testnet = shape.name, shape.chain_id, shape.testnet
        existing = next((network for network in known if network.name == name), None)
        if existing is not None:
            if existing.chain_id != chain_id:
                self.fail(
                    f"{path}.chainId",
                    f"{name} is chain {existing.chain_id}; a known network's chainId cannot change",
                    chain_id,
                )
                return None
            if "aliases" not in shape.model_fields_set:
                aliases = list(existing.aliases)
            if "testnet" not in shape.model_fields_set:
                testnet = existing.testnet
        return Network(name, chain_id, f"eip155:{chain_id}", tuple(aliases), testnet)

    def _unrepeated_aliases(self, path: str, entry: Any) -> list[str]:
        """The entry's well-formed aliases, each once; a repeat (or the name again) is reported
        whatever else is wrong with the entry. Malformed ones are the model's to report."""
        listed = entry.get("aliases") if isinstance(entry, Mapping) else None
        kept: list[str] = []
        for index, alias in enumerate(listed if isinstance(listed, list) else ()):
            if not isinstance(alias, str) or not re.fullmatch(_NAME, alias):
                continue
            if alias in kept or alias == entry.get("name"):
                self.fail(f"{path}.aliases[{index}]", "is listed twice", alias)
            else:
                kept.append(alias)
        return kept

    @staticmethod
    def _key_clash(network: Network, known: list[Network]) -> tuple[str, str, Any] | None:
        """A name, alias or chain id already taken by *another* network, as a problem."""
        others = [other for other in known if other.name != network.name]
        for other in others:
            if other.chain_id == network.chain_id:
                return (
                    "chainId",
                    f"chain {network.chain_id} is already known as {other.name}",
                    network.chain_id,
                )
            taken = {other.name, *other.aliases}
            if network.name in taken:
                return ("name", f"already names {other.name}", network.name)
            for index, alias in enumerate(network.aliases):
                if alias in taken:
                    return (f"aliases[{index}]", f"already names {other.name}", alias)
        return None

    # -- assets --------------------------------------------------------------------------------

    def _merge_assets(self, networks: AssetRegistry, entries: list[Any]) -> list[Asset]:
        merged = list(self.base.assets())
        seen_in_document: list[tuple[str, Asset]] = []
        for index, entry in enumerate(entries):
            path = f"assets[{index}]"
            shape: _AssetEntry | None = self._validated(
                entry, path, "assets", {"networks": networks}
            )
            if (
                isinstance(entry, Mapping)
                and entry.get("eip2612GasSponsoring") is True
                and entry.get("transferMethod") == "eip3009"
            ):
                self.fail(
                    f"{path}.eip2612GasSponsoring",
                    "only applies to permit2 tokens (eip3009 payments need no approval)",
                    True,
                )
                continue
            if shape is None:
                continue
            asset = Asset(**shape.model_dump())
            duplicate = next(
                (seen_path for seen_path, seen in seen_in_document if _same_token(seen, asset)),
                None,
            )
            if duplicate is not None:
                self.fail(f"{path}.address", f"the same token as {duplicate}", asset.address)
                continue
            seen_in_document.append((path, asset))
            positions = [i for i, known in enumerate(merged) if _same_token(known, asset)]
            if positions:
                merged[positions[0]] = asset
                for index in reversed(positions[1:]):
                    del merged[index]
            else:
                merged.append(asset)
        return merged


def _document_order(problem: FieldProblem) -> tuple[int, int]:
    """Where a problem stands in its file: the top level, then each network, then each asset
    (within an entry, the order the checks reported them)."""
    section, _, rest = problem.path.partition("[")
    return {"networks": 1, "assets": 2}.get(section, 0), int(rest.split("]")[0]) if rest else -1


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _same_token(known: Asset, new: Asset) -> bool:
    """Whether ``new`` replaces ``known``: same contract, or same symbol among non-test tokens."""
    if known.network != new.network:
        return False
    if known.address.lower() == new.address.lower():
        return True
    return (
        known.symbol.upper() == new.symbol.upper() and not known.test_asset and not new.test_asset
    )


def _usdc(network: str, address: str, eip712_name: str = "USD Coin") -> dict[str, Any]:
    return {
        "symbol": "USDC",
        "network": network,
        "address": address,
        "decimals": 6,
        "transferMethod": "eip3009",
        "eip712Name": eip712_name,
        "eip712Version": "2",
    }


# The built-in table, in the registry-file format, so it goes through the same validation.
_BUILTIN_DOCUMENT: Mapping[str, Any] = {
    "networks": [
        {"name": "base", "chainId": 8453, "aliases": ["base-mainnet"]},
        {"name": "base-sepolia", "chainId": 84532, "testnet": True},
        {"name": "ethereum", "chainId": 1, "aliases": ["ethereum-mainnet", "mainnet"]},
        {"name": "polygon", "chainId": 137, "aliases": ["polygon-mainnet"]},
        {"name": "avalanche", "chainId": 43114, "aliases": ["avalanche-mainnet"]},
        {"name": "arbitrum-one", "chainId": 42161, "aliases": ["arbitrum"]},
        {"name": "arbitrum-sepolia", "chainId": 421614, "testnet": True},
    ],
    "assets": [
        _usdc("base", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
        # base-sepolia's USDC calls itself "USDC" (a recurring source of broken signatures).
        _usdc("base-sepolia", "0x036CbD53842c5426634e7929541eC2318f3dCF7e", eip712_name="USDC"),
        _usdc("ethereum", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"),
        {
            # permit2: OBOL has no EIP-3009; EIP-2612 gas sponsoring: it implements permit.
            # OBOL is not deployed on base at all.
            "symbol": "OBOL",
            "network": "ethereum",
            "address": "0x0B010000b7624eb9B3DfBC279673C76E9D29D5F7",
            "decimals": 18,
            "transferMethod": "permit2",
            "eip712Name": "Obol Network",
            "eip712Version": "1",
            "eip2612GasSponsoring": True,
        },
        {
            # obol-stack's test token, a non-canonical owner-mint copy with the same name,
            # symbol, decimals and domain as OBOL; status and the quote say it is a test token.
            "symbol": "OBOL",
            "network": "base-sepolia",
            "address": "0x0a09371a8b011d5110656ceBCc70603e53FD2c78",
            "decimals": 18,
            "transferMethod": "permit2",
            "eip712Name": "Obol Network",
            "eip712Version": "1",
            "eip2612GasSponsoring": True,
            "testAsset": True,
        },
        _usdc("polygon", "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359"),
        _usdc("avalanche", "0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E"),
        _usdc("arbitrum-one", "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"),
        _usdc("arbitrum-sepolia", "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d"),
    ],
}

BUILTIN_REGISTRY: AssetRegistry = AssetRegistry().extend(_BUILTIN_DOCUMENT, source="built-in table")
"""The networks and tokens every installation knows; operators extend it with a registry file."""

"""The asset registry: built-in networks and tokens, lookups, rejections and operator extensions.

Test design notes:

* Built-in facts are spelled out in full here (not derived from the module) so that a changed
  address, decimals, transfer method or EIP-712 domain fails a test. Domain separators are pinned
  separately in ``test_domain_separators.py``.
* Lookups: canonical names, aliases and CAIP-2 ids, all case-insensitive; a 0x address in any case
  resolves to the known token with its published checksummed address.
* Rejections assert the whole message, because sellers act on it: field path, reason, value.
* Extension is tested by what an operator does (add a network, add a token, add a test token,
  override a domain, move a symbol, re-alias a network) and by one table row per validation error,
  named "valid because…" / "invalid because…".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hooks.core.assets import BUILTIN_REGISTRY, Asset, AssetRegistry, Network
from hooks.core.errors import SpecError

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
BASE_SEPOLIA_USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
ETHEREUM_USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
ETHEREUM_OBOL = "0x0B010000b7624eb9B3DfBC279673C76E9D29D5F7"
BASE_SEPOLIA_TEST_OBOL = "0x0a09371a8b011d5110656ceBCc70603e53FD2c78"
OPTIMISM_USDC = "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85"

KNOWN_NETWORKS = "base, base-sepolia, ethereum, polygon, avalanche, arbitrum-one, arbitrum-sepolia"


def usdc(network: str, address: str, eip712_name: str = "USD Coin") -> Asset:
    return Asset(
        symbol="USDC",
        network=network,
        address=address,
        decimals=6,
        transfer_method="eip3009",
        eip712_name=eip712_name,
        eip712_version="2",
        eip2612_gas_sponsoring=False,
        test_asset=False,
    )


MAINNET_OBOL = Asset(
    symbol="OBOL",
    network="ethereum",
    address=ETHEREUM_OBOL,
    decimals=18,
    transfer_method="permit2",
    eip712_name="Obol Network",
    eip712_version="1",
    eip2612_gas_sponsoring=True,
    test_asset=False,
)

TEST_OBOL = Asset(
    symbol="OBOL",
    network="base-sepolia",
    address=BASE_SEPOLIA_TEST_OBOL,
    decimals=18,
    transfer_method="permit2",
    eip712_name="Obol Network",
    eip712_version="1",
    eip2612_gas_sponsoring=True,
    test_asset=True,
)

BUILTIN_ASSETS = (
    usdc("base", BASE_USDC),
    usdc("base-sepolia", BASE_SEPOLIA_USDC, eip712_name="USDC"),
    TEST_OBOL,
    usdc("ethereum", ETHEREUM_USDC),
    MAINNET_OBOL,
    usdc("polygon", "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359"),
    usdc("avalanche", "0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E"),
    usdc("arbitrum-one", "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"),
    usdc("arbitrum-sepolia", "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d"),
)

BUILTIN_NETWORKS = (
    Network("base", 8453, "eip155:8453", ("base-mainnet",), testnet=False),
    Network("base-sepolia", 84532, "eip155:84532", (), testnet=True),
    Network("ethereum", 1, "eip155:1", ("ethereum-mainnet", "mainnet"), testnet=False),
    Network("polygon", 137, "eip155:137", ("polygon-mainnet",), testnet=False),
    Network("avalanche", 43114, "eip155:43114", ("avalanche-mainnet",), testnet=False),
    Network("arbitrum-one", 42161, "eip155:42161", ("arbitrum",), testnet=False),
    Network("arbitrum-sepolia", 421614, "eip155:421614", (), testnet=True),
)


def usdc_entry(network: str = "optimism", address: str = OPTIMISM_USDC, **changes: Any) -> Any:
    """A valid registry-file asset entry, with ``changes`` applied (None removes a key)."""
    entry: dict[str, Any] = {
        "symbol": "USDC",
        "network": network,
        "address": address,
        "decimals": 6,
        "transferMethod": "eip3009",
        "eip712Name": "USD Coin",
        "eip712Version": "2",
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not None}


OPTIMISM = {"name": "optimism", "chainId": 10, "aliases": ["op-mainnet"]}


def rejection(call: Any, *args: Any, **kwargs: Any) -> list[str]:
    """The problems a call rejects its input with, as messages."""
    with pytest.raises(SpecError) as caught:
        call(*args, **kwargs)
    return [str(problem) for problem in caught.value.problems]


# -- built-in table --------------------------------------------------------------------------


def test_builtin_networks_in_stable_order() -> None:
    assert BUILTIN_REGISTRY.networks() == BUILTIN_NETWORKS


def test_builtin_assets_in_stable_order() -> None:
    assert BUILTIN_REGISTRY.assets() == BUILTIN_ASSETS


@pytest.mark.parametrize("expected", BUILTIN_ASSETS, ids=lambda a: f"{a.symbol} on {a.network}")
def test_builtin_asset_resolves_by_symbol(expected: Asset) -> None:
    assert BUILTIN_REGISTRY.resolve(expected.network, expected.symbol.lower()) == expected


@pytest.mark.parametrize("expected", BUILTIN_ASSETS, ids=lambda a: f"{a.symbol} on {a.network}")
def test_builtin_asset_resolves_by_address_in_any_case(expected: Asset) -> None:
    for spelling in (
        expected.address,
        expected.address.lower(),
        "0x" + expected.address[2:].upper(),
    ):
        assert BUILTIN_REGISTRY.resolve(expected.network, spelling) == expected


def test_records_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BUILTIN_ASSETS[0].decimals = 18  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        BUILTIN_NETWORKS[0].chain_id = 1  # type: ignore[misc]


# -- network lookup --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        pytest.param("base", "base", id="valid because canonical name"),
        pytest.param("BASE", "base", id="valid because names are case-insensitive"),
        pytest.param("Base-Sepolia", "base-sepolia", id="valid because mixed case"),
        pytest.param("base-mainnet", "base", id="valid because base-mainnet is an alias"),
        pytest.param("ethereum-mainnet", "ethereum", id="valid because ethereum alias"),
        pytest.param("mainnet", "ethereum", id="valid because mainnet means ethereum"),
        pytest.param("polygon-mainnet", "polygon", id="valid because polygon alias"),
        pytest.param("avalanche-mainnet", "avalanche", id="valid because avalanche alias"),
        pytest.param("arbitrum", "arbitrum-one", id="valid because arbitrum alias"),
        pytest.param("eip155:8453", "base", id="valid because CAIP-2 of base"),
        pytest.param("eip155:84532", "base-sepolia", id="valid because CAIP-2 of base-sepolia"),
        pytest.param("eip155:1", "ethereum", id="valid because CAIP-2 of ethereum"),
        pytest.param("EIP155:137", "polygon", id="valid because CAIP-2 prefix is case-insensitive"),
        pytest.param("eip155:421614", "arbitrum-sepolia", id="valid because CAIP-2 of a testnet"),
    ],
)
def test_network_lookup(given: str, canonical: str) -> None:
    assert BUILTIN_REGISTRY.network(given).name == canonical


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("foo", id="invalid because unknown name"),
        pytest.param("sepolia", id="invalid because ethereum sepolia is not supported"),
        pytest.param("eip155:11155111", id="invalid because CAIP-2 of an unsupported chain"),
        pytest.param("eip155:08453", id="invalid because CAIP-2 chain ids have no leading zeros"),
        pytest.param(" base", id="invalid because of surrounding whitespace"),
        pytest.param("8453", id="invalid because a bare chain id is not a CAIP-2 id"),
        pytest.param("", id="invalid because empty"),
    ],
)
def test_unknown_network_lists_known_names(given: str) -> None:
    assert rejection(BUILTIN_REGISTRY.network, given) == [
        f"spec.payment.network: unknown network; known: {KNOWN_NETWORKS} (got {given!r})"
    ]


def test_network_must_be_a_string() -> None:
    assert rejection(BUILTIN_REGISTRY.network, 8453, path="spec.network") == [
        "spec.network: must be a string naming a network (got 8453)"
    ]


# -- asset resolution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "asset", "expected"),
    [
        pytest.param("base", "usdc", BUILTIN_ASSETS[0], id="valid because usdc on base"),
        pytest.param("base", "USDC", BUILTIN_ASSETS[0], id="valid because symbols ignore case"),
        pytest.param("base-mainnet", "Usdc", BUILTIN_ASSETS[0], id="valid because via alias"),
        pytest.param("eip155:1", "OBOL", MAINNET_OBOL, id="valid because obol via CAIP-2"),
        pytest.param("mainnet", "obol", MAINNET_OBOL, id="valid because obol via mainnet alias"),
        pytest.param(
            "ethereum", ETHEREUM_OBOL.lower(), MAINNET_OBOL, id="valid because lower-case address"
        ),
        pytest.param(
            BUILTIN_NETWORKS[1], "usdc", BUILTIN_ASSETS[1], id="valid because Network object"
        ),
    ],
)
def test_resolve(network: Network | str, asset: str, expected: Asset) -> None:
    assert BUILTIN_REGISTRY.resolve(network, asset) == expected


def test_resolve_defaults_to_usdc() -> None:
    assert BUILTIN_REGISTRY.resolve("base-sepolia").eip712_name == "USDC"


def test_resolved_address_is_the_published_checksummed_form() -> None:
    assert BUILTIN_REGISTRY.resolve("base", BASE_USDC.lower()).address == BASE_USDC


@pytest.mark.parametrize(
    ("network", "asset", "message"),
    [
        pytest.param(
            "base",
            "obol",
            "spec.payment.asset: OBOL is not deployed on base; OBOL is available on ethereum "
            "(got 'obol')",
            id="invalid because OBOL is not deployed on base",
        ),
        pytest.param(
            "base-mainnet",
            "OBOL",
            "spec.payment.asset: OBOL is not deployed on base; OBOL is available on ethereum "
            "(got 'OBOL')",
            id="invalid because OBOL is not deployed on base, named by alias",
        ),
        pytest.param(
            "eip155:8453",
            "obol",
            "spec.payment.asset: OBOL is not deployed on base; OBOL is available on ethereum "
            "(got 'obol')",
            id="invalid because OBOL is not deployed on base, named by CAIP-2",
        ),
        pytest.param(
            "base-sepolia",
            "0x" + "12" * 20,
            "spec.payment.asset: unknown token address on base-sepolia; known on base-sepolia: "
            f"USDC ({BASE_SEPOLIA_USDC}), OBOL ({BASE_SEPOLIA_TEST_OBOL}); other tokens must"
            " first be added to the registry file by the operator (got '0x" + "12" * 20 + "')",
            id="invalid because an unknown address on base-sepolia",
        ),
        pytest.param(
            "polygon",
            "obol",
            "spec.payment.asset: OBOL is not deployed on polygon; OBOL is available on ethereum "
            "(got 'obol')",
            id="invalid because OBOL is only on ethereum",
        ),
        pytest.param(
            "base",
            "dai",
            "spec.payment.asset: unknown asset on base; known: usdc, or a registered 0x token "
            "address (got 'dai')",
            id="invalid because unknown symbol",
        ),
        pytest.param(
            "ethereum",
            "",
            "spec.payment.asset: unknown asset on ethereum; known: usdc, obol, or a registered "
            "0x token address (got '')",
            id="invalid because empty",
        ),
        pytest.param(
            "base",
            "0x" + "1" * 40,
            "spec.payment.asset: unknown token address on base; known on base: "
            f"USDC ({BASE_USDC}); other tokens must first be added to the registry file by the "
            f"operator (got '0x{'1' * 40}')",
            id="invalid because unknown address",
        ),
        pytest.param(
            "base",
            ETHEREUM_USDC,
            f"spec.payment.asset: that address is USDC on ethereum, not a token registered on "
            f"base; known on base: USDC ({BASE_USDC}); other tokens must first be added to the "
            f"registry file by the operator (got {ETHEREUM_USDC!r})",
            id="invalid because the address belongs to another network",
        ),
        pytest.param(
            "base",
            "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA0291",
            "spec.payment.asset: a token address must be 0x followed by 40 hex digits "
            "(got '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA0291')",
            id="invalid because the address is one digit short",
        ),
        pytest.param(
            "base",
            "0xZZ3589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
            "spec.payment.asset: a token address must be 0x followed by 40 hex digits "
            "(got '0xZZ3589fCD6eDb6E08f4c7C32D4f71b54bdA02913')",
            id="invalid because the address is not hex",
        ),
        pytest.param(
            "base",
            6,
            "spec.payment.asset: must be a string: a token symbol or a 0x address (got 6)",
            id="invalid because not a string",
        ),
    ],
)
def test_resolve_rejects(network: str, asset: Any, message: str) -> None:
    assert rejection(BUILTIN_REGISTRY.resolve, network, asset) == [message]


def test_resolve_uses_the_given_asset_path() -> None:
    assert rejection(BUILTIN_REGISTRY.resolve, "base", "obol", path="spec.payments[1].asset") == [
        "spec.payments[1].asset: OBOL is not deployed on base; OBOL is available on ethereum "
        "(got 'obol')"
    ]


# -- extension: what operators do ------------------------------------------------------------


def test_extending_with_an_empty_document_changes_nothing() -> None:
    extended = BUILTIN_REGISTRY.extend({})
    assert extended.networks() == BUILTIN_REGISTRY.networks()
    assert extended.assets() == BUILTIN_REGISTRY.assets()


def test_extend_adds_a_network_with_its_token_and_leaves_the_original_alone() -> None:
    extended = BUILTIN_REGISTRY.extend({"networks": [OPTIMISM], "assets": [usdc_entry()]})

    optimism = Network("optimism", 10, "eip155:10", ("op-mainnet",), testnet=False)
    assert extended.networks() == (*BUILTIN_NETWORKS, optimism)
    assert extended.network("OP-Mainnet") == optimism
    assert extended.network("eip155:10") == optimism
    assert extended.resolve("eip155:10", "usdc") == usdc("optimism", OPTIMISM_USDC)
    assert extended.assets()[-1] == usdc("optimism", OPTIMISM_USDC)
    assert rejection(BUILTIN_REGISTRY.network, "optimism")  # the original is unchanged


def test_extend_adds_a_token_to_a_builtin_network() -> None:
    eurc = usdc_entry(
        "base",
        "0x60a3E35Cc302bFA44Cb288Bc5a4F316Fdb1adb42",
        symbol="EURC",
        eip712Name="EURC",
    )
    extended = BUILTIN_REGISTRY.extend({"assets": [eurc]})
    resolved = extended.resolve("base", "eurc")
    assert (resolved.symbol, resolved.eip712_name) == ("EURC", "EURC")
    assert [asset.symbol for asset in extended.assets() if asset.network == "base"] == [
        "USDC",
        "EURC",
    ]
    assert extended.resolve("base", "usdc") == BUILTIN_ASSETS[0]


def test_the_obol_test_token_resolves_by_symbol_on_its_testnet_and_by_address() -> None:
    assert BUILTIN_REGISTRY.resolve("base-sepolia", "obol") == TEST_OBOL
    assert BUILTIN_REGISTRY.resolve("base-sepolia", BASE_SEPOLIA_TEST_OBOL.lower()) == TEST_OBOL
    assert rejection(BUILTIN_REGISTRY.resolve, "base", "obol") == [
        "spec.payment.asset: OBOL is not deployed on base; OBOL is available on ethereum "
        "(got 'obol')"
    ]


def test_a_test_token_on_a_mainnet_resolves_by_address_only() -> None:
    test_obol = usdc_entry("polygon", "0x" + "ef" * 20, symbol="OBOL", decimals=18, testAsset=True)
    extended = BUILTIN_REGISTRY.extend({"assets": [test_obol]})

    assert extended.resolve("polygon", "0x" + "ef" * 20).test_asset
    assert rejection(extended.resolve, "polygon", "obol") == [
        "spec.payment.asset: OBOL on polygon is only a non-canonical test token; give it "
        f"by address (0x{'ef' * 20}) (got 'obol')"
    ]


def test_extend_overrides_a_token_domain_by_address() -> None:
    corrected = usdc_entry("base-sepolia", BASE_SEPOLIA_USDC.lower(), eip712Name="USD Coin")
    extended = BUILTIN_REGISTRY.extend({"assets": [corrected]})

    resolved = extended.resolve("base-sepolia", "usdc")
    assert resolved.eip712_name == "USD Coin"
    assert len(extended.assets()) == len(BUILTIN_ASSETS)
    assert extended.assets().index(resolved) == 1  # keeps its place in the listing


def test_extend_moves_a_symbol_to_another_contract() -> None:
    other = "0x" + "ab" * 20
    extended = BUILTIN_REGISTRY.extend({"assets": [usdc_entry("base", other)]})

    assert extended.resolve("base", "usdc").address == other
    assert rejection(extended.resolve, "base", BASE_USDC)[0].startswith(
        "spec.payment.asset: unknown token address on base"
    )


def test_a_test_token_does_not_replace_the_canonical_token_of_the_same_symbol() -> None:
    test_usdc = usdc_entry("base", "0x" + "cd" * 20, testAsset=True)
    extended = BUILTIN_REGISTRY.extend({"assets": [test_usdc]})

    assert extended.resolve("base", "usdc") == BUILTIN_ASSETS[0]
    assert extended.resolve("base", "0x" + "cd" * 20).test_asset


def test_extend_overrides_network_aliases_and_keeps_unmentioned_fields() -> None:
    extended = BUILTIN_REGISTRY.extend(
        {"networks": [{"name": "base", "chainId": 8453, "aliases": ["b"]}]}
    )

    assert extended.network("b").name == "base"
    assert rejection(extended.network, "base-mainnet")
    assert extended.networks()[0] == Network("base", 8453, "eip155:8453", ("b",), testnet=False)
    testnet_kept = BUILTIN_REGISTRY.extend(
        {"networks": [{"name": "base-sepolia", "chainId": 84532}]}
    )
    assert testnet_kept.network("base-sepolia").testnet


def test_extensions_compose() -> None:
    first = BUILTIN_REGISTRY.extend({"networks": [OPTIMISM]})
    second = first.extend({"assets": [usdc_entry("op-mainnet")]})
    assert second.resolve("optimism").address == OPTIMISM_USDC
    assert rejection(first.resolve, "optimism", "usdc")


def test_registry_built_from_nothing_knows_nothing() -> None:
    empty = AssetRegistry()
    assert empty.networks() == ()
    assert empty.assets() == ()
    assert rejection(empty.network, "base") == [
        "spec.payment.network: unknown network; known: none (got 'base')"
    ]


# -- extension: validation -------------------------------------------------------------------

VALID_DOCUMENTS = [
    pytest.param({"networks": None, "assets": None}, id="valid because empty lists may be null"),
    pytest.param({"networks": []}, id="valid because lists are optional"),
    pytest.param(
        {"networks": [{"name": "zora", "chainId": 7777777}]},
        id="valid because aliases and testnet are optional",
    ),
    pytest.param(
        {"networks": [{"name": "op-2", "chainId": 11155420, "testnet": True, "aliases": []}]},
        id="valid because names may contain digits and hyphens",
    ),
    pytest.param(
        {"assets": [usdc_entry("base", "0x" + "ab" * 20, symbol="USDC.e", decimals=0)]},
        id="valid because symbols may contain dots and decimals may be 0",
    ),
    pytest.param(
        {"assets": [usdc_entry("ethereum", "0x" + "ab" * 20, symbol="X", decimals=255)]},
        id="valid because decimals may be 255",
    ),
    pytest.param(
        {
            "assets": [
                usdc_entry(
                    "eip155:1",
                    "0x" + "ab" * 20,
                    symbol="PERMIT",
                    transferMethod="permit2",
                    eip2612GasSponsoring=True,
                )
            ]
        },
        id="valid because gas sponsoring goes with permit2",
    ),
]


@pytest.mark.parametrize("document", VALID_DOCUMENTS)
def test_valid_registry_documents(document: Any) -> None:
    BUILTIN_REGISTRY.extend(document)


INVALID_DOCUMENTS = [
    pytest.param(
        ["networks"],
        "registry file: must be a mapping with optional 'networks' and 'assets' lists "
        "(got ['networks'])",
        id="invalid because the document is not a mapping",
    ),
    pytest.param(
        {"network": []},
        "network: unknown field; allowed: networks, assets",
        id="invalid because of an unknown top-level key",
    ),
    pytest.param(
        {"networks": {"name": "optimism"}},
        "networks: must be a list (got {'name': 'optimism'})",
        id="invalid because networks is not a list",
    ),
    pytest.param(
        {"assets": ["usdc"]},
        "assets[0]: must be a mapping (got 'usdc')",
        id="invalid because an asset entry is not a mapping",
    ),
    pytest.param(
        {"networks": [{"chainId": 10}]},
        "networks[0].name: is required",
        id="invalid because the network name is missing",
    ),
    pytest.param(
        {"networks": [{"name": "Optimism", "chainId": 10}]},
        "networks[0].name: must be lowercase letters, digits and '-', starting with a letter "
        "(got 'Optimism')",
        id="invalid because the network name is not lowercase",
    ),
    pytest.param(
        {"networks": [{"name": "eip155:10", "chainId": 10}]},
        "networks[0].name: must be lowercase letters, digits and '-', starting with a letter "
        "(got 'eip155:10')",
        id="invalid because a network name cannot look like a CAIP-2 id",
    ),
    pytest.param(
        {"networks": [{"name": 10, "chainId": 10}]},
        "networks[0].name: must be a non-empty string (quote it in YAML) (got 10)",
        id="invalid because the network name is a number",
    ),
    pytest.param(
        {"networks": [{"name": "optimism"}]},
        "networks[0].chainId: is required",
        id="invalid because chainId is missing",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": "10"}]},
        "networks[0].chainId: must be a positive integer (got '10')",
        id="invalid because chainId is a string",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": 0}]},
        "networks[0].chainId: must be a positive integer (got 0)",
        id="invalid because chainId is zero",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": True}]},
        "networks[0].chainId: must be a positive integer (got True)",
        id="invalid because chainId is a boolean",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": 10, "aliases": "op"}]},
        "networks[0].aliases: must be a list of names (got 'op')",
        id="invalid because aliases is not a list",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": 10, "aliases": ["OP"]}]},
        "networks[0].aliases[0]: must be lowercase letters, digits and '-', starting with a "
        "letter (got 'OP')",
        id="invalid because an alias is not lowercase",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": 10, "aliases": ["op", "op"]}]},
        "networks[0].aliases[1]: is listed twice (got 'op')",
        id="invalid because an alias repeats",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": 10, "aliases": ["optimism"]}]},
        "networks[0].aliases[0]: is listed twice (got 'optimism')",
        id="invalid because an alias repeats the name",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": 10, "testnet": "no"}]},
        "networks[0].testnet: must be true or false (got 'no')",
        id="invalid because testnet is not a boolean",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": 10, "rpc": "http://x"}]},
        "networks[0].rpc: unknown field; allowed: name, chainId, aliases, testnet",
        id="invalid because of an unknown network field",
    ),
    pytest.param(
        {"networks": [{"name": "base", "chainId": 1}]},
        "networks[0].chainId: base is chain 8453; a known network's chainId cannot change (got 1)",
        id="invalid because a known network's chainId cannot change",
    ),
    pytest.param(
        {"networks": [{"name": "base-two", "chainId": 8453}]},
        "networks[0].chainId: chain 8453 is already known as base (got 8453)",
        id="invalid because the chain is already known under another name",
    ),
    pytest.param(
        {"networks": [{"name": "mainnet", "chainId": 99}]},
        "networks[0].name: already names ethereum (got 'mainnet')",
        id="invalid because the name is another network's alias",
    ),
    pytest.param(
        {"networks": [{"name": "optimism", "chainId": 10, "aliases": ["op", "arbitrum"]}]},
        "networks[0].aliases[1]: already names arbitrum-one (got 'arbitrum')",
        id="invalid because an alias names another network",
    ),
    pytest.param(
        {"networks": [OPTIMISM, OPTIMISM]},
        "networks[1].name: duplicates networks[0] (got 'optimism')",
        id="invalid because a network appears twice",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(symbol=None)]},
        "assets[0].symbol: is required",
        id="invalid because the symbol is missing",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(symbol="0xUSDC")]},
        "assets[0].symbol: must be 1-16 letters, digits, '.', '-' or '_', starting with a letter "
        "(got '0xUSDC')",
        id="invalid because the symbol could be mistaken for an address",
    ),
    pytest.param(
        {"assets": [usdc_entry()]},
        f"assets[0].network: unknown network; known: {KNOWN_NETWORKS} (got 'optimism')",
        id="invalid because the network is neither built in nor in the document",
    ),
    pytest.param(
        {"assets": [usdc_entry(network=None)]},
        "assets[0].network: is required",
        id="invalid because the network is missing",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(address="0x0b2C639c")]},
        "assets[0].address: must be 0x followed by 40 hex digits (got '0x0b2C639c')",
        id="invalid because the address is too short",
    ),
    pytest.param(
        {
            "networks": [OPTIMISM],
            "assets": [usdc_entry(address="0b2C639c533813f4Aa9D7837CAf62653d097Ff85")],
        },
        "assets[0].address: must be 0x followed by 40 hex digits "
        "(got '0b2C639c533813f4Aa9D7837CAf62653d097Ff85')",
        id="invalid because the address lacks 0x",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(address="0x" + "0" * 40)]},
        f"assets[0].address: must not be the zero address (got '0x{'0' * 40}')",
        id="invalid because the zero address is not a token",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(decimals="six")]},
        "assets[0].decimals: must be an integer 0-255 (got 'six')",
        id="invalid because decimals is a word",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(decimals=256)]},
        "assets[0].decimals: must be an integer 0-255 (got 256)",
        id="invalid because decimals exceeds uint8",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(decimals=-1)]},
        "assets[0].decimals: must be an integer 0-255 (got -1)",
        id="invalid because decimals is negative",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(decimals=6.0)]},
        "assets[0].decimals: must be an integer 0-255 (got 6.0)",
        id="invalid because decimals is a float",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(decimals=None)]},
        "assets[0].decimals: is required",
        id="invalid because decimals is missing",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(transferMethod="EIP3009")]},
        "assets[0].transferMethod: must be eip3009 or permit2 (got 'EIP3009')",
        id="invalid because the transfer method is unknown",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(transferMethod=None)]},
        "assets[0].transferMethod: is required",
        id="invalid because the transfer method is missing",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(eip712Name="  ")]},
        "assets[0].eip712Name: must be a non-empty string (got '  ')",
        id="invalid because the EIP-712 name is blank",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(eip712Name=None)]},
        "assets[0].eip712Name: is required",
        id="invalid because the EIP-712 name is missing",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(eip712Version=2)]},
        "assets[0].eip712Version: must be a non-empty string (quote it in YAML) (got 2)",
        id="invalid because the EIP-712 version is an unquoted number",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(eip2612GasSponsoring=True)]},
        "assets[0].eip2612GasSponsoring: only applies to permit2 tokens (eip3009 payments need "
        "no approval) (got True)",
        id="invalid because gas sponsoring is meaningless for eip3009",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(eip2612GasSponsoring="yes")]},
        "assets[0].eip2612GasSponsoring: must be true or false (got 'yes')",
        id="invalid because gas sponsoring is not a boolean",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(testAsset=1)]},
        "assets[0].testAsset: must be true or false (got 1)",
        id="invalid because testAsset is not a boolean",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(name="USD Coin")]},
        "assets[0].name: unknown field; allowed: symbol, network, address, decimals, "
        "transferMethod, eip712Name, eip712Version, eip2612GasSponsoring, testAsset",
        id="invalid because of an unknown asset field",
    ),
    pytest.param(
        {
            "networks": [OPTIMISM],
            "assets": [usdc_entry(), usdc_entry(address=OPTIMISM_USDC.lower())],
        },
        f"assets[1].address: the same token as assets[0] (got {OPTIMISM_USDC.lower()!r})",
        id="invalid because a token appears twice by address",
    ),
    pytest.param(
        {"networks": [OPTIMISM], "assets": [usdc_entry(), usdc_entry(address="0x" + "ab" * 20)]},
        f"assets[1].address: the same token as assets[0] (got '0x{'ab' * 20}')",
        id="invalid because a symbol appears twice on one network",
    ),
]


@pytest.mark.parametrize(("document", "message"), INVALID_DOCUMENTS)
def test_invalid_registry_documents(document: Any, message: str) -> None:
    assert rejection(BUILTIN_REGISTRY.extend, document) == [message]


def test_all_problems_in_a_document_are_reported_together_in_document_order() -> None:
    document = {
        "networks": [{"name": "optimism", "chainId": "ten"}, 7],
        "assets": [usdc_entry(decimals="six", eip712Version=2)],
    }
    assert rejection(BUILTIN_REGISTRY.extend, document, source="/etc/registry.yaml") == [
        "networks[0].chainId: must be a positive integer (got 'ten')",
        "networks[1]: must be a mapping (got 7)",
        f"assets[0].network: unknown network; known: {KNOWN_NETWORKS} (got 'optimism')",
        "assets[0].decimals: must be an integer 0-255 (got 'six')",
        "assets[0].eip712Version: must be a non-empty string (quote it in YAML) (got 2)",
    ]


def test_only_the_files_own_spelling_is_read_and_a_null_is_a_missing_value() -> None:
    document = {
        "networks": [{"name": " ", "chain_id": 10}],
        "assets": [{**usdc_entry("base"), "decimals": None, "eip712Name": ""}],
    }
    assert rejection(BUILTIN_REGISTRY.extend, document) == [
        "networks[0].chain_id: unknown field; allowed: name, chainId, aliases, testnet",
        "networks[0].name: must be a non-empty string (got ' ')",
        "networks[0].chainId: is required",
        "assets[0].decimals: is required",
        "assets[0].eip712Name: must be a non-empty string (got '')",
    ]


def test_the_source_names_the_document_in_whole_document_errors() -> None:
    assert rejection(BUILTIN_REGISTRY.extend, "oops", source="/etc/obol/assets.yaml") == [
        "/etc/obol/assets.yaml: must be a mapping with optional 'networks' and 'assets' lists "
        "(got 'oops')"
    ]


def test_constructing_an_inconsistent_registry_is_a_programming_error() -> None:
    base = BUILTIN_NETWORKS[0]
    with pytest.raises(ValueError, match="used twice"):
        AssetRegistry([base, dataclasses.replace(base, name="other", aliases=("base-mainnet",))])
    with pytest.raises(ValueError, match="unknown network"):
        AssetRegistry([base], [BUILTIN_ASSETS[2]])
    with pytest.raises(ValueError, match="listed twice"):
        AssetRegistry([base], [BUILTIN_ASSETS[0], BUILTIN_ASSETS[0]])

"""EIP-712 domain separators of every built-in token, pinned.

Test design notes:

* A token's EIP-712 domain (name, version, chain id, contract) must match the contract exactly or
  every buyer signature fails recovery. Names have been wrong before (Base Sepolia USDC is "USDC",
  not "USD Coin"), so each built-in token's separator is pinned here as a hex literal.
* The encoder is checked first against two values published elsewhere (Base Sepolia USDC and
  mainnet OBOL, both matching on-chain ``DOMAIN_SEPARATOR()``), so the pins are not merely
  self-consistent.
* The pin table must cover exactly the built-in tokens: adding a token without pinning it fails.
* Built-in addresses are also checked to be in EIP-55 checksummed form, as published.
* keccak-256 comes from pycryptodome; these helpers are test-only.
"""

from __future__ import annotations

import pytest
from Crypto.Hash import keccak

from hooks.core.assets import BUILTIN_REGISTRY, Asset

EIP712_DOMAIN_TYPE = (
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


def keccak256(data: bytes) -> bytes:
    digest = keccak.new(digest_bits=256)
    digest.update(data)
    return digest.digest()


def domain_separator(name: str, version: str, chain_id: int, verifying_contract: str) -> str:
    """hashStruct(EIP712Domain) as 0x-hex: 32-byte fields, strings hashed, address left-padded."""
    encoded = b"".join(
        [
            keccak256(EIP712_DOMAIN_TYPE),
            keccak256(name.encode()),
            keccak256(version.encode()),
            chain_id.to_bytes(32, "big"),
            bytes.fromhex(verifying_contract[2:]).rjust(32, b"\0"),
        ]
    )
    return "0x" + keccak256(encoded).hex()


def eip55_checksum(address: str) -> str:
    """The EIP-55 mixed-case form of an address."""
    lower = address[2:].lower()
    nibbles = keccak256(lower.encode()).hex()[: len(lower)]
    return "0x" + "".join(
        char.upper() if int(nibble, 16) >= 8 else char
        for char, nibble in zip(lower, nibbles, strict=True)
    )


def separator_of(asset: Asset) -> str:
    network = BUILTIN_REGISTRY.network(asset.network)
    return domain_separator(
        asset.eip712_name, asset.eip712_version, network.chain_id, asset.address
    )


PINNED_SEPARATORS = {
    ("base", "USDC"): "0x02fa7265e7c5d81118673727957699e4d68f74cd74b7db77da710fe8a2c7834f",
    ("base-sepolia", "USDC"): "0x71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818",
    ("ethereum", "USDC"): "0x06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335",
    ("ethereum", "OBOL"): "0x5a3cd81e467dcdfe5d4ed4383d31f23bd6ce41b7be43812c5554ba9f7d949432",
    # obol-stack's test token (same domain name/version as OBOL, chain 84532, its own address).
    ("base-sepolia", "OBOL"): "0xa65018cc4bd0f6e569b39796fb911b0bfdfdb0013059d6d4accd43e79912e8f2",
    ("polygon", "USDC"): "0xcaa2ce1a5703ccbe253a34eb3166df60a705c561b44b192061e28f2a985be2ca",
    ("avalanche", "USDC"): "0xbbea200329a938bc3438984a49cb0732e66d66d7bd59c127abacc1710e77f7b3",
    ("arbitrum-one", "USDC"): "0x08d11903f8419e68b1b8721bcbe2e9fc68569122a77ef18c216f10b3b5112c78",
    (
        "arbitrum-sepolia",
        "USDC",
    ): "0x85944e1292d007732838d6eadfa67589b78ffcededbd4df60488d0af251308bb",
}


def test_encoder_reproduces_base_sepolia_usdc_published_separator() -> None:
    separator = domain_separator("USDC", "2", 84532, "0x036CbD53842c5426634e7929541eC2318f3dCF7e")
    assert separator.startswith("0x71f17a3b")
    assert separator.endswith("c9818")


def test_encoder_reproduces_mainnet_obol_published_separator() -> None:
    separator = domain_separator(
        "Obol Network", "1", 1, "0x0B010000b7624eb9B3DfBC279673C76E9D29D5F7"
    )
    assert separator.startswith("0x5a3cd81e")
    assert separator.endswith("49432")


def test_usd_coin_name_on_base_sepolia_gives_a_different_separator() -> None:
    """The recurring bug: "USD Coin" on Base Sepolia cannot verify; the registry must say "USDC"."""
    wrong = domain_separator("USD Coin", "2", 84532, "0x036CbD53842c5426634e7929541eC2318f3dCF7e")
    assert wrong.startswith("0x2f5ab5ee")
    assert wrong != PINNED_SEPARATORS[("base-sepolia", "USDC")]


def test_pin_table_covers_exactly_the_builtin_tokens() -> None:
    builtin = {(asset.network, asset.symbol) for asset in BUILTIN_REGISTRY.assets()}
    assert builtin == set(PINNED_SEPARATORS)


@pytest.mark.parametrize(
    "asset", BUILTIN_REGISTRY.assets(), ids=lambda asset: f"{asset.symbol} on {asset.network}"
)
def test_builtin_token_domain_separator_is_pinned(asset: Asset) -> None:
    assert separator_of(asset) == PINNED_SEPARATORS[(asset.network, asset.symbol)]


@pytest.mark.parametrize(
    "asset", BUILTIN_REGISTRY.assets(), ids=lambda asset: f"{asset.symbol} on {asset.network}"
)
def test_builtin_token_address_is_eip55_checksummed(asset: Asset) -> None:
    assert asset.address == eip55_checksum(asset.address)


def test_eip55_helper_matches_the_specification_example() -> None:
    # An example address from the EIP-55 specification's test vectors.
    assert eip55_checksum("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed") == (
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    )

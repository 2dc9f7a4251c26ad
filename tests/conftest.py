"""Shared pytest configuration: the golden-file regeneration flag and common fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from hooks.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite golden files from the current output instead of comparing",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden files."""
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture
def settings() -> Settings:
    """The embedded default settings."""
    return Settings()

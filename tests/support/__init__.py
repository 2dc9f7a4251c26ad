"""Test support code shared by the unit, property and end-to-end tests (not shipped)."""

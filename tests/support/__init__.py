"""Helpers the tests share: plain modules, imported explicitly (fixtures live in conftest.py)."""

"""Shared fixtures live in tests/plugins/, one module per real peer."""

pytest_plugins = ["tests.plugins.influx", "tests.plugins.lab", "tests.plugins.mqtt"]

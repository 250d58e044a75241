"""Shared fixtures live in tests/plugins/, one module per real peer; test data (Device, Fault,
FaultEvent) is built by tests/plugins/factories.py."""

pytest_plugins = ["tests.plugins.factories", "tests.plugins.influx", "tests.plugins.lab", "tests.plugins.mqtt", "tests.plugins.quarter"]

"""Metrics: the InfluxDB schema (a contract) and the sink that writes line protocol."""

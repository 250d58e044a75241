"""The process: config loader, daemon wiring and pipeline, scheduler, CLI, logs, live view,
HTTP API and status page. The top layer: nothing imports it."""

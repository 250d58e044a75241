"""The process: config loader, daemon wiring and pipeline, scheduler, CLI, logs, live view,
HTTP API and status page. The top layer: nothing imports it."""


def version() -> str:
    """fleetmon's version from the installed package's metadata ("unknown" when run from a
    checkout that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("fleetmon")
    except PackageNotFoundError:
        return "unknown"

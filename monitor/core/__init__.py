"""The vocabulary every layer uses: Device, Kind, Status, Selector (model), measurements, the
config base (strict frozen models, secrets, ConfigError). Imports nothing of fleetmon."""

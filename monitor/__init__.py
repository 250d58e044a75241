"""fleetmon's daemon, in layers (docs/ARCHITECTURE.md): core → fleet → (probes) → state →
metrics → (rules) → app. A lower layer never imports a higher one (tests/test_layers.py)."""

"""fleetmon daemon core: config, inventory, scheduler, state, storage, CLI."""

"""The rules: the rule contract (base), rule types by family (families/) and their registry,
the engine that turns what the fleet looks like into conditions; from conditions to people
(fault lifecycle, maintenance, outbox, notifiers) is rules.alerting."""

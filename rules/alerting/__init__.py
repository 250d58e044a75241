"""From conditions to people: the fault lifecycle, maintenance windows, the duty roster, the
durable notification outbox and its routes (notifiers/)."""

"""Rules engine, fault lifecycle and notifiers (filled by the faults-and-alerts work)."""

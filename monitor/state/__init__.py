"""Device state: the tracker (hysteresis, topology), the bases (network, service, video,
online), online rates, and the SQLite state database that keeps every transition."""

"""The fleet: inventory from config.yaml and point lists (点位明细表, CSV/XLSX), topology."""

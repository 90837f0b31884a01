"""Capacity reports: traffic aggregates without personal data (plain Python, no Beam)."""

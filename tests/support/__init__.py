"""Shared test helpers (test Central System, ...)."""

"""Takt."""

"""Realtime threshold alerts for supervisors: rules, a pure engine, a store and channels."""

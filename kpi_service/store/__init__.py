"""The KPI service's own records (keys, audit, schemes, targets, external metrics) in one
relational database: SQLite embedded by default, PostgreSQL for a shared deployment."""

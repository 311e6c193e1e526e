"""Storage: the InfluxDB schema as code and the one InfluxDB client of the house."""

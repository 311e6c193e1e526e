#!/bin/sh
# Run once by the influxdb:1.8 image when its data volume is new (mounted at
# /docker-entrypoint-initdb.d; the image sources it with INFLUX_CMD set to an admin
# `influx -execute`). Creates what the collector would otherwise need admin rights
# for, and the collector's own user: read and write on the takt database only, no
# admin (rollups read raw points and write hourly ones, so it needs both).
set -e
: "${INFLUX_COLLECTOR_PASSWORD:?set INFLUX_COLLECTOR_PASSWORD}"
$INFLUX_CMD 'CREATE DATABASE "takt"'
$INFLUX_CMD 'CREATE RETENTION POLICY "raw" ON "takt" DURATION 730d REPLICATION 1 DEFAULT'
$INFLUX_CMD 'CREATE RETENTION POLICY "rollup" ON "takt" DURATION INF REPLICATION 1'
$INFLUX_CMD "CREATE USER \"takt-collector\" WITH PASSWORD '${INFLUX_COLLECTOR_PASSWORD}'"
$INFLUX_CMD 'GRANT ALL ON "takt" TO "takt-collector"'

# One image for every Takt service (agent, collector, KPI service, simulators).
FROM python:3.11-slim-bookworm

# socat exposes a simulated serial device as a serial device server (socket://) in compose.
RUN apt-get update \
 && apt-get install -y --no-install-recommends socat curl \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 takt
WORKDIR /app
COPY pyproject.toml README.md ./
COPY takt_wire takt_wire
COPY takt_common takt_common
COPY takt_store takt_store
COPY takt_cli takt_cli
COPY edge_agent edge_agent
COPY collector collector
COPY kpi_service kpi_service
COPY simulators simulators
COPY device_profiles device_profiles
COPY deploy deploy
RUN pip install --no-cache-dir . \
 && mkdir -p /var/lib/takt && chown takt:takt /var/lib/takt

USER takt
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["takt"]
CMD ["--help"]

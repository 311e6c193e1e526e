"""The whole simulated shop floor: devices up, plan replayed against an accelerated clock.

``sim_time = scenario.start + wall elapsed * acceleration``; the clock ticks at the
scenario's fixed simulated step, and each tick replays the planned events up to
that instant, then a heartbeat. When the loop falls behind it catches up without
sleeping; device timestamps stay the planned ones, so the truth never depends on
wall-clock jitter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from simulators.certs import CertPair, make_run_pki
from simulators.devicestate import DeviceState
from simulators.frames import epoch_ms
from simulators.ledger import build_ledger, write_ledger, write_roster
from simulators.modbus_counter import ModbusCounters
from simulators.mqtt_gateway import MqttGateway
from simulators.opcua_plc import NAMESPACE, OpcUaPlc, Security
from simulators.plan import StationPlan, plan_scenario
from simulators.scenario import Scenario
from simulators.serial_box import SerialBox
from takt_common.errors import TaktError

log = logging.getLogger(__name__)
HEARTBEAT = "heartbeat"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class FloorError(TaktError, RuntimeError):
    """The floor cannot start or run as asked."""


@dataclass(frozen=True)
class StationEndpoint:
    """Where a reader finds one station's device."""

    protocol: str
    line: str
    station: str
    model: str
    url: str | None = None  # opcua: server endpoint
    namespace: str | None = None  # opcua: namespace URI; NodeIds are ns=<idx>;s=<station>.<Name>
    topic_prefix: str | None = None  # mqtt: plant/<line>/<station>
    serial_path: str | None = None  # serial: stable symlink to the current pty slave
    modbus: str | None = None  # modbus: "tcp://host:port" or "rtu:<path of the line>"
    unit: int | None = None  # modbus: unit id on that gateway or line


class ShopFloor:
    """Async context manager: devices up on enter, everything closed on exit."""

    def __init__(
        self,
        scenario: Scenario,
        workdir: Path,
        *,
        mqtt_host: str | None = None,
        mqtt_port: int = 1883,
        mqtt_username: str | None = None,
        mqtt_password: str | None = None,
        opcua_host: str = "127.0.0.1",
        opcua_port: int = 0,
        opcua_security: Security = "none",
        opcua_user: tuple[str, str] | None = None,
        start_paused: bool = False,
        acceleration: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.workdir = Path(workdir)
        self.acceleration = acceleration or scenario.time_acceleration
        self.plans: dict[str, StationPlan] = plan_scenario(scenario)
        self.ledger: dict[str, Any] = build_ledger(scenario, self.plans)
        bits = scenario.counter_bits
        self.states = {sid: DeviceState.initial(p.station, bits) for sid, p in self.plans.items()}
        if mqtt_host is None and any(st.protocol == "mqtt" for _, st in scenario.stations()):
            raise FloorError("the scenario has MQTT stations: give mqtt_host (--mqtt-host)")
        self._start_paused = start_paused
        self._mqtt_args = (mqtt_host, mqtt_port, mqtt_username, mqtt_password)
        self._opcua_args = (opcua_host, opcua_port, opcua_security, opcua_user)
        self.pki: tuple[CertPair, CertPair] | None = None
        self.plc: OpcUaPlc | None = None
        self.mqtt: MqttGateway | None = None
        self.serial: dict[str, SerialBox] = {}
        self.modbus: ModbusCounters | None = None
        self.endpoints: dict[str, StationEndpoint] = {}
        self._devices: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._epoch0 = epoch_ms(scenario.start, 0)
        self.sim_ms = -1  # last tick replayed
        self.max_lag_s = 0.0
        self.roster_path = self.workdir / "roster.yaml"
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self._start_devices()
        except BaseException:
            await self._stop_devices()
            raise
        if not self._start_paused:
            self.start_clock()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_devices()

    async def _start_devices(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        by_proto: dict[str, list[StationPlan]] = {
            "opcua": [],
            "mqtt": [],
            "serial": [],
            "modbus": [],
        }
        for plan in self.plans.values():
            by_proto[plan.station.protocol].append(plan)
        host, port, security, user = self._opcua_args
        if by_proto["opcua"]:
            if port == 0:
                port = _free_port(host)
            if security != "none":
                self.pki = make_run_pki(self.workdir / "pki")
            self.plc = OpcUaPlc(
                [p.station for p in by_proto["opcua"]],
                self.states,
                self.scenario.start,
                port,
                host=host,
                security=security,
                pki=self.pki[0] if self.pki else None,
                user=user,
            )
            await self.plc.start()
            for p in by_proto["opcua"]:
                self._devices[p.station.id] = self.plc
                self.endpoints[p.station.id] = self._endpoint(
                    p, url=self.plc.url, namespace=NAMESPACE
                )
        if by_proto["mqtt"]:
            mhost, mport, muser, mpass = self._mqtt_args
            assert mhost is not None
            prefixes = {p.station.id: f"plant/{p.line.id}/{p.station.id}" for p in by_proto["mqtt"]}
            self.mqtt = MqttGateway(
                mhost,
                mport,
                prefixes,
                {p.station.id: p.station.duplicate_p for p in by_proto["mqtt"]},
                self._epoch0,
                self.scenario.seed,
                username=muser,
                password=mpass,
            )
            await self.mqtt.start()
            for p in by_proto["mqtt"]:
                self._devices[p.station.id] = self.mqtt
                self.endpoints[p.station.id] = self._endpoint(
                    p, topic_prefix=prefixes[p.station.id]
                )
                await self.mqtt.publish_initial(p.station.id, self.states[p.station.id])
        for p in by_proto["serial"]:
            box = SerialBox(
                p.station.id, self.workdir, self._epoch0, p.station.corrupt_p, self.scenario.seed
            )
            box.plug()
            self.serial[p.station.id] = box
            self._devices[p.station.id] = box
            self.endpoints[p.station.id] = self._endpoint(p, serial_path=str(box.link))
        if by_proto["modbus"]:
            await self._start_modbus(by_proto["modbus"])
        self.roster_path = write_roster(self.scenario, self.workdir)
        endpoints = {sid: asdict(ep) for sid, ep in self.endpoints.items()}
        (self.workdir / "endpoints.json").write_text(json.dumps(endpoints, indent=1) + "\n")

    async def _start_modbus(self, plans: list[StationPlan]) -> None:
        host = self._opcua_args[0]
        self.modbus = ModbusCounters(
            {p.station.id: p.station.modbus_transport for p in plans},
            self.states,
            self._epoch0,
            self.workdir,
            host=host,
            port=_free_port(host),
            bucket_s=self.scenario.ledger_bucket,
        )
        await self.modbus.start()
        for p in plans:
            sid = p.station.id
            self._devices[sid] = self.modbus
            where = (
                f"tcp://{host}:{self.modbus.port}"
                if p.station.modbus_transport == "tcp"
                else f"rtu:{self.modbus.rtu_path}"
            )
            st = p.station
            self.endpoints[sid] = StationEndpoint(
                st.protocol, p.line.id, sid, st.model, modbus=where, unit=self.modbus.units[sid]
            )

    def _endpoint(self, plan: StationPlan, **kw: Any) -> StationEndpoint:
        st = plan.station
        return StationEndpoint(st.protocol, plan.line.id, st.id, st.model, **kw)

    async def _stop_devices(self) -> None:
        if self.plc is not None:
            await self.plc.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()
        for box in self.serial.values():
            box.close()
        if self.modbus is not None:
            await self.modbus.stop()

    # -- clock -----------------------------------------------------------------------------

    def start_clock(self) -> None:
        """Simulated time starts now (t = scenario.start)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="takt-sim-clock")

    async def wait_done(self) -> None:
        """Until the simulated end is replayed and devices flushed; then the ledger is written.

        Bound it with ``asyncio.timeout``; cancelling the wait does not stop the clock.
        """
        if self._task is None:
            raise FloorError("the clock was never started (start_paused=True needs start_clock())")
        await asyncio.shield(self._task)
        if self.mqtt is not None:
            await self.mqtt.flush()
        write_ledger(self.ledger, self.workdir)

    async def wait_until(self, sim_seconds: float) -> None:
        """Until the clock has replayed ``sim_seconds`` after the scenario start."""
        target = round(sim_seconds * 1000)
        if self.sim_ms >= target:
            return
        if self.done:
            raise FloorError("the clock stopped before that simulated time")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        await fut

    def _wake(self, tick: int) -> None:
        keep = []
        for target, fut in self._waiters:
            if fut.done():
                continue
            if target <= tick:
                fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters = keep

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def _run(self) -> None:
        try:
            await self._replay()
        finally:
            for _, fut in self._waiters:
                if not fut.done():
                    fut.set_exception(FloorError("the clock stopped before that simulated time"))
            self._waiters = []

    async def _replay(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        step = round(self.scenario.tick * 1000)
        end = round(self.scenario.duration * 1000)
        cursors = dict.fromkeys(self.plans, 0)
        unplugs = sorted(
            (round(u.at * 1000), round((u.at + u.duration) * 1000), sid)
            for sid, p in self.plans.items()
            for u in p.station.unplugs
        )
        actions = sorted(
            [(a, "unplug", s) for a, _, s in unplugs] + [(b, "plug", s) for _, b, s in unplugs]
        )
        tick = 0
        while tick <= end:
            due = t0 + tick / 1000 / self.acceleration
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                self.max_lag_s = max(self.max_lag_s, now - due)
            while actions and actions[0][0] <= tick:
                _, what, sid = actions.pop(0)
                box = self.serial[sid]
                box.unplug() if what == "unplug" else box.plug()
            for sid, plan in self.plans.items():
                state, device = self.states[sid], self._devices[sid]
                i = cursors[sid]
                while i < len(plan.events) and plan.events[i].t_ms <= tick:
                    ev = plan.events[i]
                    kind = state.apply(ev)
                    await device.publish(sid, state, ev.t_ms, kind)
                    i += 1
                cursors[sid] = i
                if tick % 1000 == 0 or tick == end:  # heartbeat: every simulated second
                    state.tick(tick)
                    await device.publish(sid, state, tick, HEARTBEAT)
            self.sim_ms = tick
            self._wake(tick)
            if tick == end:
                break
            tick = min(tick + step, end)

    # -- fault injection for tests ---------------------------------------------------------

    async def restart_opcua_server(self) -> None:
        """The PLC's server stops and starts again on the same port (registers kept)."""
        if self.plc is None:
            raise FloorError("no OPC UA stations in this scenario")
        await self.plc.restart()

    async def unplug_serial(self, station: str, seconds: float) -> None:
        """Pull the station's serial cable for ``seconds`` of wall time, then plug it back."""
        box = self.serial.get(station)
        if box is None:
            raise FloorError(f"{station} is not a serial station")
        box.unplug()
        try:
            await asyncio.sleep(seconds)
        finally:
            box.plug()

    def stats(self) -> dict[str, Any]:
        """What the devices did (noise injected, messages sent): not truth, not deterministic."""
        out: dict[str, Any] = {"sim_ms": self.sim_ms, "max_lag_s": round(self.max_lag_s, 3)}
        if self.plc is not None:
            out["opcua_writes"] = self.plc.writes
        if self.mqtt is not None:
            out["mqtt_published"] = self.mqtt.published
            out["mqtt_duplicates"] = self.mqtt.duplicates
            out["mqtt_disconnects"] = self.mqtt.disconnects
        if self.modbus is not None:
            out["modbus_held"] = self.modbus.held
            out["modbus_unread"] = self.modbus.unread
        for sid, box in self.serial.items():
            out[f"serial_{sid}"] = {
                "frames": box.frames,
                "corrupted": box.corrupted,
                "dropped": box.dropped,
                "unplugs": box.unplugs,
            }
        return out

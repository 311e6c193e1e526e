"""The simulated PLC (``takt-sim-plc``): one asyncua server serving every OPC UA station.

Every write carries the simulated time as SourceTimestamp; per station the
timestamps strictly increase (at least 1 ms apart), counters are written before
badge and state, so a client that orders notifications by SourceTimestamp sees
the device's own order (docs/devices.md).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server

from simulators.certs import SERVER_URI, CertPair
from simulators.devicestate import COUNTERS, IDENTITY, DeviceState
from simulators.scenario import Station

log = logging.getLogger(__name__)

NAMESPACE = "urn:takt:sim:plc"
Security = Literal["none", "Basic256Sha256", "Aes128_Sha256_RsaOaep"]
POLICIES: dict[str, list[ua.SecurityPolicyType]] = {
    "none": [ua.SecurityPolicyType.NoSecurity],
    "Basic256Sha256": [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt],
    "Aes128_Sha256_RsaOaep": [ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt],
}
HEARTBEAT = "heartbeat"


def _nid(name: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(ns))


def _qname(name: str, ns: int) -> ua.QualifiedName:
    return ua.QualifiedName(ua.String(name), ua.Int16(ns))


class _PasswordUsers:
    """Accept exactly one username/password; anything else is refused (no anonymous)."""

    def __init__(self, username: str, password: str) -> None:
        self._username, self._password = username, password

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username == self._username and password == self._password:
            return User(role=UserRole.User, name=username)
        log.warning("OPC UA login refused for user %r", username)
        return None


class OpcUaPlc:
    """A PLC whose registers mirror the DeviceStates of its stations."""

    def __init__(
        self,
        stations: list[Station],
        states: dict[str, DeviceState],
        start: datetime,
        port: int,
        *,
        host: str = "127.0.0.1",
        security: Security = "none",
        pki: CertPair | None = None,
        user: tuple[str, str] | None = None,
    ) -> None:
        if security != "none" and pki is None:
            raise ValueError("OPC UA security needs a server certificate")
        self.url = f"opc.tcp://{host}:{port}/takt/plc"
        self._stations = stations
        self._states = states
        self._start = start
        self._security = security
        self._pki = pki
        self._user = user
        self._server: Server | None = None
        self.ns = 0
        self._last_ts: dict[str, int] = {}
        self._written: dict[ua.NodeId, object] = {}
        self.writes = 0
        self.up = False
        # Held by every publish and by a restart, so a restart never interleaves with
        # writes: the clock waits (and catches up after), registers are rewritten whole.
        self._lock = asyncio.Lock()

    def node_id(self, station: str, name: str) -> ua.NodeId:
        return _nid(f"{station}.{name}", self.ns)

    async def start(self) -> None:
        """Build the address space with the current register values and listen."""
        users = _PasswordUsers(*self._user) if self._user else None
        server = Server(user_manager=users)  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("Takt simulated PLC")
        await server.set_application_uri(SERVER_URI)
        server.set_security_policy(POLICIES[self._security])
        if self._pki is not None and self._security != "none":
            await server.load_certificate(str(self._pki.cert))
            await server.load_private_key(str(self._pki.key))
        if self._user is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        self.ns = await server.register_namespace(NAMESPACE)
        line = await server.nodes.objects.add_object(_nid("Line", self.ns), _qname("Line", self.ns))
        self._written.clear()
        for st in self._stations:
            obj = await line.add_object(_nid(st.id, self.ns), _qname(st.id, self.ns))
            for name, variant in self._variants(self._states[st.id]):
                await obj.add_variable(self.node_id(st.id, name), _qname(name, self.ns), variant)
        self._server = server
        await server.start()
        for st in self._stations:
            # Before the clock starts the registers date from 1 s before the scenario start,
            # so the first planned change keeps its exact timestamp.
            state = self._states[st.id]
            ts = state.ts_ms if st.id in self._last_ts else -1000
            await self._write_all(st.id, state, ts)
        self.up = True

    async def stop(self) -> None:
        self.up = False
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def restart(self) -> None:
        """The PLC's OPC UA server goes away and comes back on the same port, counters kept."""
        async with self._lock:
            await self.stop()
            await self.start()

    @staticmethod
    def _variants(state: DeviceState) -> list[tuple[str, ua.Variant]]:
        u16, u32 = ua.VariantType.UInt16, ua.VariantType.UInt32
        bits_type = u16 if state.bits <= 16 else u32
        out = [("GoodCount", ua.Variant(state.good, bits_type))]
        out += [
            (f"Rejects.{code}", ua.Variant(state.rejects[code], bits_type)) for code in state.codes
        ]
        out += [
            ("RejectCount", ua.Variant(state.reject_total, bits_type)),
            ("LastRejectCode", ua.Variant(state.last_code, ua.VariantType.String)),
            ("LastCycleTime", ua.Variant(state.last_cycle_s, ua.VariantType.Double)),
            ("OperatorBadge", ua.Variant(state.badge, ua.VariantType.String)),
            ("MachineState", ua.Variant(state.state, ua.VariantType.Int32)),
            ("Heartbeat", ua.Variant(state.heartbeat, u32)),
        ]
        return out

    def _source_time(self, station: str, ts_ms: int) -> ua.DateTime:
        last = self._last_ts.get(station)
        ts = ts_ms if last is None else max(ts_ms, last + 1)
        self._last_ts[station] = ts
        return cast(ua.DateTime, self._start + timedelta(milliseconds=ts))

    async def _write(
        self, station: str, name: str, variant: ua.Variant, ts_ms: int, force: bool
    ) -> None:
        assert self._server is not None
        nid = self.node_id(station, name)
        if not force and self._written.get(nid) == variant.Value:
            return
        self._written[nid] = variant.Value
        dv = ua.DataValue(
            variant,
            SourceTimestamp=self._source_time(station, ts_ms),
            ServerTimestamp=cast(ua.DateTime, datetime.now(UTC)),
        )
        await self._server.write_attribute_value(nid, dv)
        self.writes += 1

    async def _write_all(self, station: str, state: DeviceState, ts_ms: int) -> None:
        for name, variant in self._variants(state):
            await self._write(station, name, variant, ts_ms, force=True)

    async def publish(self, station: str, state: DeviceState, ts_ms: int, kind: str) -> None:
        """Write what changed: counters first, then badge, then state (docs/devices.md)."""
        async with self._lock:
            if self.up:
                await self._publish(station, state, ts_ms, kind)

    async def _publish(self, station: str, state: DeviceState, ts_ms: int, kind: str) -> None:
        if kind == HEARTBEAT:
            beat = ua.Variant(state.heartbeat, ua.VariantType.UInt32)
            await self._write(station, "Heartbeat", beat, ts_ms, force=True)
            return
        names: tuple[str, ...]
        if kind == COUNTERS:
            names = ("GoodCount", *(f"Rejects.{c}" for c in state.codes), "RejectCount")
            names += ("LastRejectCode", "LastCycleTime")
        else:
            assert kind == IDENTITY, kind
            names = ("OperatorBadge", "MachineState")
        variants = dict(self._variants(state))
        for name in names:
            await self._write(station, name, variants[name], ts_ms, force=False)

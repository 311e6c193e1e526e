"""The PLC's security: SignAndEncrypt with the run's generated certificates, and a password."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.security_policies import (
    SecurityPolicyAes128Sha256RsaOaep,
    SecurityPolicyBasic256Sha256,
)
from asyncua.ua.uaerrors import UaError

from simulators import ShopFloor, load_scenario
from simulators.certs import CLIENT_URI
from simulators.opcua_plc import Security

TINY = Path(__file__).resolve().parents[2] / "simulators" / "scenarios" / "test_tiny.yaml"
POLICY_CLASS: dict[str, Any] = {
    "Basic256Sha256": SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": SecurityPolicyAes128Sha256RsaOaep,
}


async def _read_good(
    floor: ShopFloor, policy: str | None, user: tuple[str, str] | None
) -> tuple[int, ua.MessageSecurityMode]:
    ep = floor.endpoints["P1"]
    assert ep.url and ep.namespace
    client = Client(ep.url, timeout=5)
    if policy is not None:
        assert floor.pki is not None
        server, mine = floor.pki
        client.application_uri = CLIENT_URI
        await client.set_security(
            POLICY_CLASS[policy],
            certificate=str(mine.cert),
            private_key=str(mine.key),
            server_certificate=str(server.cert),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
    if user is not None:
        client.set_user(user[0])
        client.set_password(user[1])
    async with asyncio.timeout(30), client:
        ns = await client.get_namespace_index(ep.namespace)
        node = client.get_node(ua.NodeId.from_string(f"ns={ns};s=P1.GoodCount"))
        value = await node.read_value()
        return int(value), client.security_policy.Mode


@pytest.mark.parametrize("policy", ["Basic256Sha256", "Aes128_Sha256_RsaOaep"])
async def test_sign_and_encrypt_with_generated_certificates(
    tmp_path: Path, policy: Security
) -> None:
    floor = ShopFloor(load_scenario(TINY), tmp_path, opcua_security=policy, start_paused=True)
    async with floor:
        assert floor.pki is not None
        assert all(p.cert.exists() and p.key.stat().st_mode & 0o077 == 0 for p in floor.pki)
        good, mode = await _read_good(floor, policy, None)
        assert good == 0
        assert mode == ua.MessageSecurityMode.SignAndEncrypt
        with pytest.raises(UaError, match="No matching endpoints"):
            await _read_good(floor, None, None)  # no unencrypted endpoint is offered


async def test_username_password_is_enforced(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(16)
    floor = ShopFloor(
        load_scenario(TINY),
        tmp_path,
        opcua_security="Basic256Sha256",
        opcua_user=("agent", password),
        start_paused=True,
    )
    async with floor:
        good, _ = await _read_good(floor, "Basic256Sha256", ("agent", password))
        assert good == 0
        for wrong in (("agent", password + "x"), ("other", password), None):
            with pytest.raises(UaError):
                await _read_good(floor, "Basic256Sha256", wrong)

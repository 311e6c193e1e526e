"""Channels against real local receivers (HTTP server, aiosmtpd): retries and recorded outcomes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from kpi_service.alerts.channels import ChannelContext, build_channels
from kpi_service.alerts.channels.web import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from kpi_service.alerts.config import SmtpSettings
from kpi_service.alerts.dispatch import Dispatcher, route
from kpi_service.alerts.model import Alert, Transition
from kpi_service.alerts.rules import parse_rules
from kpi_service.alerts.store import AlertStore
from takt_cli.localservices import free_port
from tests.alerts.receivers import HttpReceiver, receiver_fixture

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from receiver_fixture()


def transition(kind: str = "raised") -> Transition:
    alert = Alert(
        id="a1", rule_id="defects", metric="defect_rate", scope="worker", site="s1",
        line="L1", station="S2", worker="W7", severity="warning", status="active",
        value=12.5, threshold=10, unit="%", raised_event_ts=1.0, raised_at=2.0,
    )  # fmt: skip
    return Transition(kind=kind, at=2.0, event_ts=1.0, alert=alert)


def rules_for(url: str, type_: str = "webhook", extra: str = "") -> str:
    return f"""
channels:
  out: {{type: {type_}, url: "{url}", {extra}}}
rules:
  - {{id: defects, metric: defect_rate, scope: worker, warning: 10, clear: 5, channels: [out]}}
"""


async def deliver(tmp_path: Path, rules_text: str, env: dict[str, str], **kw: object) -> AlertStore:
    rules = parse_rules(rules_text)
    store = AlertStore(tmp_path / "alerts.sqlite")
    async with httpx.AsyncClient(timeout=5) as http:
        context = ChannelContext(http=http, environ=env, smtp=kw.pop("smtp", None))  # type: ignore[arg-type]
        channels = build_channels(rules.channels, context)
        dispatcher = Dispatcher(store, attempts=3, backoff_s=0.01, backoff_max_s=0.05)
        t = transition()
        store.apply(t)
        transition_id = store.apply(transition("acknowledged"))
        assert transition_id is not None
        dispatcher.submit(transition_id, t, [channels[n] for n in route(rules, t)])
        await dispatcher.drain(grace_s=20)
    return store


async def test_webhook_is_signed_and_recorded(tmp_path: Path, receiver: HttpReceiver) -> None:
    rules = rules_for(receiver.url + "/hook", extra="secret_env: HOOK_SECRET")
    store = await deliver(tmp_path, rules, {"HOOK_SECRET": SECRET})
    got = receiver.get()
    assert got.path == "/hook"
    assert verify_webhook(SECRET.encode(), got.headers[TIMESTAMP_HEADER], got.body,
                          got.headers[SIGNATURE_HEADER])  # fmt: skip
    assert not verify_webhook(b"wrong", got.headers[TIMESTAMP_HEADER], got.body,
                              got.headers[SIGNATURE_HEADER])  # fmt: skip
    body = got.json()
    assert body["type"] == "alert.raised"
    assert (body["alert"]["worker"], body["alert"]["station"]) == ("W7", "S2")
    assert "不良率" in body["text"]["zh"]
    [row] = store.deliveries("a1")
    assert (row["channel"], row["status"], row["attempts"]) == ("out", "delivered", 1)


async def test_webhook_retries_5xx_then_delivers(tmp_path: Path, receiver: HttpReceiver) -> None:
    receiver.replies += [(503, b"busy"), (500, b"oops")]
    store = await deliver(tmp_path, rules_for(receiver.url), {})
    [row] = store.deliveries("a1")
    assert (row["status"], row["attempts"]) == ("delivered", 3)


async def test_webhook_4xx_is_not_retried(tmp_path: Path, receiver: HttpReceiver) -> None:
    receiver.replies += [(400, b"bad request")]
    store = await deliver(tmp_path, rules_for(receiver.url), {})
    [row] = store.deliveries("a1")
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "400" in str(row["error"])


async def test_unreachable_receiver_fails_after_the_attempts(tmp_path: Path) -> None:
    store = await deliver(tmp_path, rules_for(f"http://127.0.0.1:{free_port()}"), {})
    [row] = store.deliveries("a1")
    assert (row["status"], row["attempts"]) == ("failed", 3)


def test_missing_secret_fails_at_start_up() -> None:
    rules = parse_rules(rules_for("http://127.0.0.1:9/x", extra="secret_env: NOT_SET_ANYWHERE"))

    async def build() -> None:
        async with httpx.AsyncClient() as http:
            build_channels(rules.channels, ChannelContext(http=http, environ={}))

    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE"):
        asyncio.run(build())


async def test_dingtalk_signed_markdown_and_rate_limit_retry(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    receiver.replies += [(200, b'{"errcode":130101,"errmsg":"send too fast"}')]
    rules = rules_for(receiver.url + "/robot/send?access_token=t", "dingtalk", "secret_env: DT")
    store = await deliver(tmp_path, rules, {"DT": SECRET})
    first, second = receiver.get(), receiver.get()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(second.path).query)
    to_sign = f"{query['timestamp'][0]}\n{SECRET}".encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), to_sign, hashlib.sha256).digest())
    assert query["sign"][0] == expected.decode() and query["access_token"] == ["t"]
    assert second.json()["msgtype"] == "markdown" and "W7" in second.json()["markdown"]["text"]
    assert first.body == second.body
    [row] = store.deliveries("a1")
    assert (row["status"], row["attempts"]) == ("delivered", 2)


async def test_dingtalk_config_error_is_not_retried(tmp_path: Path, receiver: HttpReceiver) -> None:
    receiver.replies += [(200, b'{"errcode":310000,"errmsg":"keywords not in content"}')]
    store = await deliver(tmp_path, rules_for(receiver.url, "dingtalk"), {})
    [row] = store.deliveries("a1")
    assert (row["status"], row["attempts"]) == ("failed", 1) and "310000" in str(row["error"])


async def test_wecom_and_slack_payloads(tmp_path: Path, receiver: HttpReceiver) -> None:
    await deliver(tmp_path, rules_for(receiver.url, "wecom"), {})
    wecom = receiver.get().json()
    assert wecom["msgtype"] == "markdown" and "defect rate" in wecom["markdown"]["content"]
    await deliver(tmp_path / "2", rules_for(receiver.url, "slack", "language: en"), {})
    slack = receiver.get().json()
    assert slack["text"].startswith("[warning raised] defect rate 12.5%")


class Sink:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


EMAIL = """
channels:
  mail: {{type: email, to: [{to}], sender: takt@example.org, language: zh}}
rules:
  - {{id: defects, metric: defect_rate, scope: worker, warning: 10, clear: 5, channels: [mail]}}
"""


async def test_email_over_a_real_smtp_server(tmp_path: Path, smtp_sink: tuple[Sink, int]) -> None:
    sink, port = smtp_sink
    smtp = SmtpSettings(host="127.0.0.1", port=port)
    store = await deliver(tmp_path, EMAIL.format(to="sup@example.org"), {}, smtp=smtp)
    [envelope] = sink.messages
    assert envelope.rcpt_tos == ["sup@example.org"]
    message = message_from_bytes(envelope.original_content or b"")
    assert "W7" in str(make_header(decode_header(message["Subject"])))
    assert "不良率" in message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert store.deliveries("a1")[0]["status"] == "delivered"


async def test_email_refused_recipient_is_not_retried(
    tmp_path: Path, smtp_sink: tuple[Sink, int]
) -> None:
    _sink, port = smtp_sink
    smtp = SmtpSettings(host="127.0.0.1", port=port)
    store = await deliver(tmp_path, EMAIL.format(to="nobody@example.org"), {}, smtp=smtp)
    [row] = store.deliveries("a1")
    assert (row["status"], row["attempts"]) == ("failed", 1)

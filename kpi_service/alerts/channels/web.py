"""HTTP channels: a generic HMAC-signed JSON webhook, DingTalk, WeCom and Slack robots.

Payload builders are pure functions; :func:`post` maps answers to delivered /
retry (transport errors, 429, 5xx, robot rate limits) / give up (other 4xx, bad config).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import httpx

from kpi_service.alerts.channels.base import ChannelContext, DeliveryError
from kpi_service.alerts.channels.registry import register
from kpi_service.alerts.model import Transition
from kpi_service.alerts.rules import ChannelDef

SIGNATURE_HEADER = "X-Takt-Signature"
TIMESTAMP_HEADER = "X-Takt-Timestamp"
ROBOT_RATE_LIMITED = {130101, 45009}
"""DingTalk and WeCom error codes meaning "too many messages": worth retrying."""


def webhook_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``<timestamp>.<body>`` (the timestamp defeats replays)."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_webhook(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers: check the signature a Takt webhook carries."""
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


def transition_json(transition: Transition) -> dict[str, Any]:
    return {
        "type": f"alert.{transition.kind}",
        "at": transition.at,
        "event_ts": transition.event_ts,
        "alert": transition.alert.model_dump(mode="json"),
        "text": {"en": transition.summary("en"), "zh": transition.summary("zh")},
    }


def dingtalk_url(url: str, secret: bytes | None, now_ms: int) -> str:
    """DingTalk "additional signature": HMAC-SHA256 of ``<ms>\\n<secret>``, base64, in the URL."""
    if secret is None:
        return url
    to_sign = f"{now_ms}\n{secret.decode()}".encode()
    sign = base64.b64encode(hmac.new(secret, to_sign, hashlib.sha256).digest()).decode()
    query = urllib.parse.urlencode({"timestamp": now_ms, "sign": sign})
    return f"{url}{'&' if '?' in url else '?'}{query}"


def markdown_text(transition: Transition, definition: ChannelDef) -> str:
    return transition.summary(definition.language).replace("\n", "\n\n")


async def post(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    robot: bool = False,
) -> None:
    try:
        response = await http.post(
            url, content=body, headers={"Content-Type": "application/json", **headers}
        )
    except httpx.HTTPError as err:
        raise DeliveryError(f"{type(err).__name__}: {err}", retryable=True) from err
    if response.status_code == 429 or response.status_code >= 500:
        raise DeliveryError(f"HTTP {response.status_code}", retryable=True)
    if response.status_code >= 300:
        raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}", retryable=False)
    if robot:
        try:
            answer = response.json()
        except ValueError as err:
            raise DeliveryError("robot answered with no JSON", retryable=False) from err
        code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
        if code != 0:
            raise DeliveryError(
                f"robot error {code}: {answer.get('errmsg')}", retryable=code in ROBOT_RATE_LIMITED
            )


@register("webhook")
class WebhookChannel:
    """Generic JSON webhook; signed when ``secret_env`` names a secret."""

    def __init__(self, name: str, definition: ChannelDef, context: ChannelContext) -> None:
        assert definition.url is not None
        self.name, self.url, self.http = name, definition.url, context.http
        self.secret = context.secret(name, definition)

    async def send(self, transition: Transition) -> None:
        body = json.dumps(transition_json(transition), ensure_ascii=False).encode()
        headers: dict[str, str] = {}
        if self.secret is not None:
            stamp = str(int(time.time()))
            headers = {
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: webhook_signature(self.secret, stamp, body),
            }
        await post(self.http, self.url, body, headers)


@register("dingtalk")
class DingTalkChannel:
    def __init__(self, name: str, definition: ChannelDef, context: ChannelContext) -> None:
        assert definition.url is not None
        self.name, self.definition, self.http = name, definition, context.http
        self.secret = context.secret(name, definition)

    async def send(self, transition: Transition) -> None:
        assert self.definition.url is not None
        text = markdown_text(transition, self.definition)
        payload = {"msgtype": "markdown", "markdown": {"title": "Takt", "text": text}}
        url = dingtalk_url(self.definition.url, self.secret, int(time.time() * 1000))
        await post(self.http, url, json.dumps(payload, ensure_ascii=False).encode(), {}, robot=True)


@register("wecom")
class WeComChannel:
    def __init__(self, name: str, definition: ChannelDef, context: ChannelContext) -> None:
        assert definition.url is not None
        self.name, self.definition, self.http = name, definition, context.http

    async def send(self, transition: Transition) -> None:
        assert self.definition.url is not None
        payload = {
            "msgtype": "markdown",
            "markdown": {"content": markdown_text(transition, self.definition)},
        }
        body = json.dumps(payload, ensure_ascii=False).encode()
        await post(self.http, self.definition.url, body, {}, robot=True)


@register("slack")
class SlackChannel:
    def __init__(self, name: str, definition: ChannelDef, context: ChannelContext) -> None:
        assert definition.url is not None
        self.name, self.definition, self.http = name, definition, context.http

    async def send(self, transition: Transition) -> None:
        assert self.definition.url is not None
        payload = {"text": transition.summary(self.definition.language)}
        body = json.dumps(payload, ensure_ascii=False).encode()
        await post(self.http, self.definition.url, body, {})

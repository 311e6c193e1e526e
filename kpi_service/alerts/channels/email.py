"""E-mail over SMTP (stdlib smtplib in a worker thread; STARTTLS and login when configured)."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from kpi_service.alerts.channels.base import ChannelContext, DeliveryError
from kpi_service.alerts.channels.registry import register
from kpi_service.alerts.config import SmtpSettings
from kpi_service.alerts.model import Transition
from kpi_service.alerts.rules import ChannelDef


def build_message(transition: Transition, definition: ChannelDef) -> EmailMessage:
    assert definition.sender is not None
    message = EmailMessage()
    message["From"] = definition.sender
    message["To"] = ", ".join(definition.to)
    message["Subject"] = "Takt: " + transition.summary("en")
    message.set_content(transition.summary(definition.language) + "\n")
    return message


@register("email")
class EmailChannel:
    def __init__(self, name: str, definition: ChannelDef, context: ChannelContext) -> None:
        if context.smtp is None or not context.smtp.host:
            raise ValueError(f"channel {name!r}: set TAKT_ALERTS_SMTP__HOST for e-mail")
        self.name, self.definition, self.smtp = name, definition, context.smtp

    async def send(self, transition: Transition) -> None:
        message = build_message(transition, self.definition)
        await asyncio.to_thread(_send, self.smtp, message)


def _send(smtp: SmtpSettings, message: EmailMessage) -> None:
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.username and smtp.password:
                client.login(smtp.username, smtp.password.get_secret_value())
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as err:
        raise DeliveryError(f"SMTP refused every recipient: {err}", retryable=False) from err
    except smtplib.SMTPResponseException as err:
        raise DeliveryError(
            f"SMTP {err.smtp_code}: {err.smtp_error!r}", retryable=err.smtp_code < 500
        ) from err
    except (smtplib.SMTPException, OSError) as err:
        raise DeliveryError(f"SMTP: {err}", retryable=True) from err

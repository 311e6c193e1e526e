"""The client TLS context of every Takt MQTT connection (one setup, one error)."""

from __future__ import annotations

import ssl

from takt_common.mqtt.errors import MqttConfigError
from takt_common.mqtt.settings import MqttSettings


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """The client TLS context the settings ask for; MqttConfigError names a bad file."""
    for name, path in settings.tls_files():
        if not path.is_file():
            raise MqttConfigError(f"mqtt {name}: {path} is not a readable file")
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        if settings.cert_file is not None:
            key = str(settings.key_file) if settings.key_file else None
            context.load_cert_chain(str(settings.cert_file), key)
    except (OSError, ssl.SSLError) as err:
        raise MqttConfigError(f"mqtt TLS files cannot be used: {err}") from None
    if settings.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif not settings.verify_hostname:
        context.check_hostname = False
    return context

"""The security tests attack each component through the fixtures its own tests use."""

from tests.collector.conftest import make_settings

__all__ = ["make_settings"]

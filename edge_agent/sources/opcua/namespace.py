"""Finding a profile's namespace in a server's namespace array (pure).

Many servers put their host name into their namespace URI, so the same PLC
model has a different URI on every machine: a profile can name the namespace
by exact URI, by a URI pattern (glob, or regex after ``re:``) or by index.
A namespace that cannot be found is that station's error; the message carries
the server's namespace array so the fix is obvious from the log.
"""

from __future__ import annotations

import fnmatch
import re

from edge_agent.sources.opcua.models import OpcuaBinding
from takt_common.errors import TaktError


class NamespaceError(TaktError, LookupError):
    """The profile's namespace is not (exactly once) in the server's namespace array."""


def resolve_namespace(binding: OpcuaBinding, array: list[str]) -> int:
    listing = ", ".join(f"{i}={uri}" for i, uri in enumerate(array))
    if binding.namespace_index is not None:
        if binding.namespace_index >= len(array):
            raise NamespaceError(
                f"namespace index {binding.namespace_index} does not exist "
                f"(server namespaces: {listing})"
            )
        return binding.namespace_index
    if binding.namespace_uri is not None:
        if binding.namespace_uri not in array:
            raise NamespaceError(
                f"namespace {binding.namespace_uri!r} not on the server (server namespaces: "
                f"{listing}); a URI that differs per host needs namespace_uri_pattern"
            )
        return array.index(binding.namespace_uri)
    pattern = binding.namespace_uri_pattern
    assert pattern is not None
    if pattern.startswith("re:"):
        regex = re.compile(pattern.removeprefix("re:"))
        found = [i for i, uri in enumerate(array) if regex.search(uri)]
    else:
        found = [i for i, uri in enumerate(array) if fnmatch.fnmatchcase(uri, pattern)]
    if len(found) != 1:
        what = "no namespace" if not found else f"{len(found)} namespaces"
        raise NamespaceError(
            f"{what} of the server match {pattern!r} (server namespaces: {listing})"
        )
    return found[0]

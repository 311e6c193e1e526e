"""What a pydantic model allows at a location: its field names and whether a value is secret.

Used by the settings loader to suggest the key an operator meant ("did you mean")
and to refuse secrets in files without each service listing its secret fields.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr

_SECRETS = (SecretStr, SecretBytes)


def _flatten(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _flatten(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(annotation) for t in _flatten(arg)]
    return [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [t for t in _flatten(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]


def _step(annotation: Any, part: str) -> list[Any]:
    """The annotations found one level below ``annotation`` at key/index ``part``."""
    found: list[Any] = []
    for kind in _flatten(annotation):
        origin = get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            info = kind.model_fields.get(part)
            if info is None:
                info = next((f for f in kind.model_fields.values() if f.alias == part), None)
            if info is not None:
                found.append(info.annotation)
        elif origin in (list, tuple, set, frozenset) and part.isdigit():
            found += [a for a in get_args(kind) if a is not Ellipsis]
        elif origin is dict:
            args = get_args(kind)
            if len(args) == 2:
                found.append(args[1])
    return found


def _tagged(models: list[type[BaseModel]], tag: str) -> list[type[BaseModel]]:
    """Union members whose discriminator (a Literal field) takes the value ``tag``."""
    hits = []
    for model in models:
        for info in model.model_fields.values():
            if get_origin(info.annotation) is Literal and tag in get_args(info.annotation):
                hits.append(model)
                break
    return hits


def annotations_at(root: type[BaseModel], loc: Sequence[str]) -> list[Any]:
    """The annotations a value at ``loc`` may have (several for unions); [] if unknown.

    Parts that are not keys (the tag pydantic adds for a discriminated union)
    narrow the union to its matching member instead.
    """
    current: list[Any] = [root]
    for part in loc:
        below = [a for ann in current for a in _step(ann, part)]
        if not below:
            models = [m for ann in current for m in _models(ann)]
            tagged = _tagged(models, part)
            if not tagged:
                return []
            current = list(tagged)
            continue
        current = below
    return current


def field_names(root: type[BaseModel], loc: Sequence[str]) -> list[str]:
    """Field names (and aliases) allowed in the mapping at ``loc``."""
    names: list[str] = []
    for model in (m for ann in annotations_at(root, loc) for m in _models(ann)):
        for name, info in model.model_fields.items():
            names.append(info.alias or name)
    return sorted(set(names))


def is_secret(root: type[BaseModel], loc: Sequence[str]) -> bool:
    """Whether the value at ``loc`` is (or holds) a SecretStr: it belongs in the environment."""
    for annotation in annotations_at(root, loc):
        for kind in _flatten(annotation):
            if kind in _SECRETS:
                return True
            if get_origin(kind) is dict and any(
                t in _SECRETS for arg in get_args(kind)[1:] for t in _flatten(arg)
            ):
                return True
    return False

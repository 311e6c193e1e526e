"""``/api/v1/board/pairings``: supervisors pair tablets and wall screens with the board.

``POST`` (supervisor or admin) issues a code, a link and a QR code; ``POST .../redeem``
(no key: the tablet has none yet) trades the code for a board key, once; ``GET`` lists
them with the state of their keys and ``POST .../{id}/revoke`` ends one. A supervisor
sees and manages only pairings of its own lines. The link carries the code in the
fragment, so it reaches no server log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, cast

import segno
from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from kpi_service.api.deps import Principal, require_scopes
from kpi_service.board.pairing import Pairing, PairingBook, PairingRefused, Throttle, shown

router = APIRouter(prefix="/board/pairings", tags=["board"])
Issuer = Annotated[Principal, Depends(require_scopes("supervisor"))]
REDEEM_PATH = "/api/v1/board/pairings/redeem"
"""The one body-carrying route open without a key (the request guard lets it through)."""

PairingId = Annotated[int, Path(ge=1, le=2**62, description="The pairing's id (from the list).")]
Label = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[\w .\-]+$")]


class PairingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Lines the board shows (default: all the issuer's).",
    )
    label: Label = Field("tablet", description="Where the tablet or screen is.")
    minutes: int = Field(10, ge=1, le=30, description="The code expires after this.")
    days: int = Field(180, ge=1, le=400, description="Validity of the board key.")


class PairingOut(BaseModel):
    id: int
    issued_by: str
    lines: list[str]
    label: str
    created_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    key_name: str | None
    status: str = Field(description="waiting | expired | active | revoked (its board key)")


class IssuedPairing(PairingOut):
    code: str = Field(description="Shown once: type it on the tablet, or scan the QR code.")
    link: str = Field(description="The board with the code (in the fragment).")
    qr_svg: str = Field(description="The link as a QR code (SVG data URI).")


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=32)


class Redeemed(BaseModel):
    key: str = Field(description="The board key, shown once; the tablet keeps it.")
    name: str
    lines: list[str]
    expires_in_days: int


def book(request: Request) -> PairingBook:
    found = getattr(request.app.state, "pairings", None)
    if found is None:
        settings = request.app.state.settings
        found = request.app.state.pairings = PairingBook(
            request.app.state.store, request.app.state.keys, settings.secret_key.get_secret_value()
        )
    return cast(PairingBook, found)


def throttle(request: Request) -> Throttle:
    found = getattr(request.app.state, "pairing_throttle", None)
    if found is None:
        found = request.app.state.pairing_throttle = Throttle()
    return cast(Throttle, found)


def _status(pairing: Pairing, request: Request) -> str:
    if pairing.key_name is None:
        return "waiting" if pairing.expires_at > datetime.now(UTC) else "expired"
    for key in request.app.state.keys.list():
        if key.name == pairing.key_name:
            return str(key.status(datetime.now(UTC)))
    return "revoked"


def _out(pairing: Pairing, request: Request) -> PairingOut:
    return PairingOut(
        id=pairing.id, issued_by=pairing.issued_by, lines=list(pairing.lines),
        label=pairing.label, created_at=pairing.created_at, expires_at=pairing.expires_at,
        redeemed_at=pairing.redeemed_at, key_name=pairing.key_name,
        status=_status(pairing, request),
    )  # fmt: skip


def _manages(principal: Principal, pairing: Pairing) -> bool:
    return all(principal.may_see_line(line) for line in pairing.lines)


@router.post(
    "",
    summary="Issue a pairing code for a tablet or wall screen (supervisor: its own lines)",
    status_code=status.HTTP_201_CREATED,
)
def issue(body: PairingIn, principal: Issuer, request: Request) -> IssuedPairing:
    if body.lines is not None:
        lines = frozenset(body.lines)
        if not all(principal.may_see_line(line) for line in lines):
            raise HTTPException(403, "a supervisor pairs boards of the lines it supervises")
    elif principal.lines is not None:
        lines = principal.lines
    else:
        raise HTTPException(422, "give the lines the board shows")
    code, pairing = book(request).issue(
        principal.name, lines, label=body.label, minutes=body.minutes, key_days=body.days
    )
    link = f"{request.base_url}api/v1/board/#pair={code}"
    qr = segno.make(link, error="m")
    return IssuedPairing(
        **_out(pairing, request).model_dump(), code=shown(code), link=link,
        qr_svg=qr.svg_data_uri(scale=4),
    )  # fmt: skip


def _keyless(request: Request) -> None:
    """Pairing is for a device without a key; a caller holding one gains nothing here
    (checked before the body, so such a caller learns nothing from validation either)."""
    if "authorization" in request.headers or "x-api-key" in request.headers:
        raise HTTPException(403, "a caller with a key does not pair; log out first")


@router.post("/redeem", summary="Trade a pairing code for a board key (once; no key needed)")
def redeem(body: RedeemIn, request: Request, _: Annotated[None, Depends(_keyless)]) -> Redeemed:
    client = request.client.host if request.client else "unknown"
    gate = throttle(request)
    wait = gate.retry_after(client)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed pairing attempts; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    try:
        key, pairing = book(request).redeem(body.code)
    except PairingRefused:
        gate.failed(client)
        raise HTTPException(404, "unknown, expired or used code") from None
    assert pairing.key_name is not None
    return Redeemed(
        key=key, name=pairing.key_name, lines=list(pairing.lines), expires_in_days=pairing.key_days
    )


@router.get("", summary="Pairings and the state of their board keys (supervisor: its lines)")
def list_pairings(principal: Issuer, request: Request) -> list[PairingOut]:
    return [_out(p, request) for p in book(request).list() if _manages(principal, p)]


@router.post("/{pairing_id}/revoke", summary="Revoke a paired board's key (or void its code)")
def revoke(pairing_id: PairingId, principal: Issuer, request: Request) -> PairingOut:
    pairings = book(request)
    try:
        pairing = pairings.get(pairing_id)
    except PairingRefused:
        raise HTTPException(404, f"no pairing {pairing_id}") from None
    if not _manages(principal, pairing):
        raise HTTPException(404, f"no pairing {pairing_id}")
    return _out(pairings.revoke(pairing_id), request)

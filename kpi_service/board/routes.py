"""Serves the board and the worker page (static files); no page holds data until a key is given.

``board/`` is the supervisors' board; ``board/me.html`` is a worker's own page, opened from
the link or QR code of a ``self`` key (``api/routes/selfservice.py``); ``board/hr.html`` is
HR's charts (trend, distribution, down-time Pareto) over the HR API; ``charts.js`` draws
the SVG charts for any page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

STATIC = Path(__file__).parent / "static"
FILES = {
    "index.html": "text/html",
    "board.js": "text/javascript",
    "board.css": "text/css",
    "me.html": "text/html",
    "me.js": "text/javascript",
    "me.css": "text/css",
    "hr.html": "text/html",
    "hr.js": "text/javascript",
    "hr.css": "text/css",
    "charts.js": "text/javascript",
}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/board", tags=["board"])


@router.get("", include_in_schema=False)
def board_root() -> RedirectResponse:
    return RedirectResponse("board/", status_code=307)


@router.get("/", include_in_schema=False)
def board_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=FILES["index.html"], headers=HEADERS)


@router.get("/{name}", include_in_schema=False)
def board_asset(name: str) -> FileResponse:
    if name not in FILES:
        raise HTTPException(404, "not found")
    return FileResponse(STATIC / name, media_type=FILES[name], headers=HEADERS)

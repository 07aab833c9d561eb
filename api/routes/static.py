"""`/static/…`: the pages' one stylesheet, their scripts, and the brand's colour.

Only the files shipped in `api/pages/static/` are served (looked up by name in a table
built at start, so no path reaches the file system), with a short public cache.
`/static/brand.css` is generated from `BRAND_COLOR`, so the pages need no inline style.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from api.deps import Settings

STATIC = Path(__file__).resolve().parent.parent / "pages" / "static"
_MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_FILES = {
    path.name: (path.read_bytes(), _MEDIA_TYPES[path.suffix])
    for path in sorted(STATIC.iterdir())
    if path.suffix in _MEDIA_TYPES
}
_CACHE = {"Cache-Control": "public, max-age=300"}

router = APIRouter(prefix="/static", include_in_schema=False)


@router.get("/brand.css")
async def brand_css(settings: Settings) -> Response:
    # BRAND_COLOR is validated as #rrggbb, so it cannot close the rule.
    body = f":root {{ --brand: {settings.brand_color}; }}\n"
    return Response(body, media_type="text/css; charset=utf-8", headers=_CACHE)


@router.get("/{name}")
async def static_file(name: str) -> Response:
    found = _FILES.get(name)
    if found is None:
        raise HTTPException(404, "No such file")
    content, media_type = found
    return Response(content, media_type=media_type, headers=_CACHE)

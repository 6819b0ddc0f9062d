"""/docs and /redoc work offline: every script, style and icon they load comes from the app."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

ASSET_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",), ".png": ("image/png",)}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_same_origin_assets(client, page):
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"https?:|//[a-z0-9]", html, re.IGNORECASE), "a URL to another host"
    assets = ASSET_URL.findall(html)
    suffixes = {urlsplit(url).path.rsplit(".", 1)[-1] for url in assets}
    assert {"js", "png"} <= suffixes and (page != "/docs" or "css" in suffixes)
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        media_type = asset.headers["content-type"].split(";")[0]
        assert media_type in CONTENT_TYPES["." + url.rsplit(".", 1)[-1]], (url, media_type)
        assert len(asset.content) > 1_000  # the real file, not an error page


async def test_swagger_ui_is_told_the_same_openapi_document_and_no_validator(client):
    html = (await client.get("/docs")).text
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200

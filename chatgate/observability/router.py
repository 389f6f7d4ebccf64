from fastapi import APIRouter, Request, Response

from chatgate.observability.metrics import render_metrics
from chatgate.observability.probes import refresh_scrape_gauges

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def read_metrics(request: Request) -> Response:
    await refresh_scrape_gauges(request.app.state)
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)

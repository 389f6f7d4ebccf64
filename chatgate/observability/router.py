from fastapi import APIRouter, Response

from chatgate.observability.metrics import render_metrics

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def read_metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)

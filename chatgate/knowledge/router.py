"""Admins' knowledge bases and documents (API.md, "Knowledge bases")."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, UploadFile

from chatgate.auth.deps import AdminUser
from chatgate.core.errors import AppError, TooLarge
from chatgate.knowledge.deps import KnowledgeBases, Retrieval
from chatgate.knowledge.parsing import BY_SUFFIX, document_name, media_type_of
from chatgate.knowledge.schemas import (
    Citation,
    CitationList,
    DocumentList,
    DocumentOut,
    KnowledgeBaseCreate,
    KnowledgeBaseList,
    KnowledgeBaseOut,
    KnowledgeBaseUpdate,
    SearchRequest,
)

PREFIX = "/v1/admin/knowledge-bases"
router = APIRouter(prefix=PREFIX, tags=["knowledge"])


@router.get("", response_model=KnowledgeBaseList)
async def list_bases(knowledge: KnowledgeBases, _: AdminUser) -> KnowledgeBaseList:
    return KnowledgeBaseList(data=[KnowledgeBaseOut.of(*b) for b in await knowledge.bases()])


@router.post("", response_model=KnowledgeBaseOut, status_code=201)
async def create_base(
    body: KnowledgeBaseCreate, knowledge: KnowledgeBases, user: AdminUser
) -> KnowledgeBaseOut:
    return KnowledgeBaseOut.of(await knowledge.create_base(user=user, spec=body), 0)


@router.get("/{kb_id}", response_model=KnowledgeBaseOut)
async def get_base(kb_id: str, knowledge: KnowledgeBases, _: AdminUser) -> KnowledgeBaseOut:
    return KnowledgeBaseOut.of(*await knowledge.base(kb_id))


@router.patch("/{kb_id}", response_model=KnowledgeBaseOut)
async def update_base(
    kb_id: str, body: KnowledgeBaseUpdate, knowledge: KnowledgeBases, user: AdminUser
) -> KnowledgeBaseOut:
    await knowledge.update_base(user=user, kb_id=kb_id, changes=body)
    return KnowledgeBaseOut.of(*await knowledge.base(kb_id))


@router.delete("/{kb_id}", status_code=204)
async def delete_base(kb_id: str, knowledge: KnowledgeBases, user: AdminUser) -> Response:
    await knowledge.delete_base(user=user, kb_id=kb_id)
    return Response(status_code=204)


@router.post(
    "/{kb_id}/documents",
    response_model=DocumentOut,
    status_code=202,
    responses={200: {"model": DocumentOut, "description": "the same file is already there"}},
)
async def upload_document(
    kb_id: str, file: UploadFile, response: Response, knowledge: KnowledgeBases, user: AdminUser
) -> DocumentOut:
    """202 with the new document, `processing`; 200 with the document already holding the
    same bytes (its sha256) in this knowledge base."""
    media_type = media_type_of(file.filename, file.content_type)
    if media_type is None:
        raise AppError(
            f"{file.filename or 'this file'} is not a type chatgate reads; send one of "
            f"{', '.join(sorted(BY_SUFFIX))}",
            code="unsupported_document_type", status=415,
        )  # fmt: skip
    cap = knowledge.settings.max_upload_bytes
    content = await file.read(cap + 1)
    if len(content) > cap:
        raise TooLarge(f"the document is over {cap} bytes", code="too_large")
    document, created = await knowledge.add_document(
        user=user, kb_id=kb_id, name=document_name(file.filename), media_type=media_type,
        content=content,
    )  # fmt: skip
    if not created:
        response.status_code = 200
    return DocumentOut.of(document)


@router.get("/{kb_id}/documents", response_model=DocumentList)
async def list_documents(kb_id: str, knowledge: KnowledgeBases, _: AdminUser) -> DocumentList:
    return DocumentList(data=[DocumentOut.of(d) for d in await knowledge.documents(kb_id)])


@router.get("/{kb_id}/documents/{document_id}", response_model=DocumentOut)
async def get_document(
    kb_id: str, document_id: uuid.UUID, knowledge: KnowledgeBases, _: AdminUser
) -> DocumentOut:
    return DocumentOut.of(await knowledge.document(kb_id, document_id))


@router.delete("/{kb_id}/documents/{document_id}", status_code=204)
async def delete_document(
    kb_id: str, document_id: uuid.UUID, knowledge: KnowledgeBases, user: AdminUser
) -> Response:
    await knowledge.delete_document(user=user, kb_id=kb_id, document_id=document_id)
    return Response(status_code=204)


@router.post("/{kb_id}/search", response_model=CitationList)
async def search(
    kb_id: str, body: SearchRequest, knowledge: KnowledgeBases, retriever: Retrieval, _: AdminUser
) -> CitationList:
    """What an assistant answering from this knowledge base would retrieve for `query`."""
    await knowledge.base(kb_id)  # 404 kb_not_found, where retrieval would skip it
    passages = await retriever.retrieve([kb_id], body.query, top_k=body.top_k, mode=body.mode)
    return CitationList(data=[Citation.of(i, p) for i, p in enumerate(passages, start=1)])

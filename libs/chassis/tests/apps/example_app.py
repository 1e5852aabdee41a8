"""An example service that uses every builder step at once (test_builder.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.auth import PrincipalDep, require_scopes
from chassis.builder import AppBuilder
from chassis.cache import CacheDep, get_or_set
from chassis.database import SessionDep, make_metadata
from chassis.http import get_upstream
from chassis.settings import BaseServiceSettings


class Base(DeclarativeBase):
    metadata = make_metadata()


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(200))


class NoteCreate(BaseModel):
    text: str


class NoteRead(BaseModel):
    id: int
    owner: str
    text: str


router = APIRouter(prefix="/api")
CanWrite = require_scopes("notes:write")


@router.post("/notes", status_code=201)
async def create_note(
    body: NoteCreate, principal: PrincipalDep, session: SessionDep, _: CanWrite
) -> NoteRead:
    note = Note(owner=principal.subject, text=body.text)
    session.add(note)
    await session.flush()
    return NoteRead(id=note.id, owner=note.owner, text=note.text)


@router.get("/notes")
async def list_notes(principal: PrincipalDep, session: SessionDep) -> list[NoteRead]:
    rows = await session.scalars(select(Note).where(Note.owner == principal.subject))
    return [NoteRead(id=n.id, owner=n.owner, text=n.text) for n in rows]


@router.get("/cached/{key}")
async def cached(key: str, cache: CacheDep) -> dict[str, str]:
    async def produce() -> bytes:
        return f"computed:{key}".encode()

    return {"value": (await get_or_set(cache, key, produce)).decode()}


@router.get("/upstream")
async def call_upstream(request: Request) -> dict[str, Any]:
    response = await get_upstream(request, "echo").get("/echo")
    return {"status": response.status_code, "seen": response.json()}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret-internal-detail at /srv/app/models.py")


@router.get("/slow")
async def slow() -> None:
    await asyncio.sleep(5)


def build_example_app(settings: BaseServiceSettings, *, exporter: Any = None) -> Any:
    return (
        AppBuilder(settings, title="example")
        .with_tracing(exporter=exporter)
        .with_database()
        .with_redis()
        .with_cache()
        .with_auth()
        .with_http_clients()
        .with_metrics()
        .with_routes(router)
        .build()
    )

"""SQLAlchemy 2 (Core and ORM) against a Borealis writer, with both PostgreSQL drivers:
``postgresql+psycopg`` and ``postgresql+asyncpg`` (the latter through SQLAlchemy's asyncio
extension; the scenario runs in ``AsyncSession.run_sync``, so the same code drives both).

One scenario per driver, on tables of its own: ``metadata.create_all`` (a SERIAL key and an
IDENTITY key, Boolean, Numeric, DateTime(timezone=True) with ``server_default=func.now()``,
JSONB, UUID, String(n), a ForeignKey, an Index, a UniqueConstraint), the ORM with a
one-to-many relationship loaded by ``selectinload`` and ``joinedload``, Core inserts with
RETURNING, ``insert(...).on_conflict_do_update(...)``, updates and deletes, reflection (the
inspector and ``MetaData.reflect``) and ``drop_all``. Values come back with their Python
types: Decimal, an aware datetime, dict, uuid.UUID, bool.

The reflection results expected here are what SQLAlchemy 2.1 reflects from PostgreSQL 15
for the same models (a throwaway server, the same code), pasted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from compat_cluster import Cluster
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    UniqueConstraint,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)


def models(prefix: str) -> tuple[type[DeclarativeBase], Any, Any]:
    """The scenario's models, on tables named after ``prefix`` (one set per driver)."""

    class Base(DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = f"{prefix}_authors"
        id: Mapped[int] = mapped_column(primary_key=True)  # SERIAL
        name: Mapped[str] = mapped_column(String(50), unique=True)
        active: Mapped[bool] = mapped_column(Boolean, server_default=true())
        created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                     server_default=func.now())
        books: Mapped[list[Book]] = relationship(back_populates="author",
                                                 order_by="Book.id",
                                                 cascade="all, delete-orphan")

    class Book(Base):
        __tablename__ = f"{prefix}_books"
        id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
        author_id: Mapped[int] = mapped_column(ForeignKey(f"{prefix}_authors.id",
                                                          ondelete="CASCADE"))
        title: Mapped[str] = mapped_column(String(200))
        price: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
        meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
        isbn: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), default=uuid.uuid4)
        author: Mapped[Author] = relationship(back_populates="books")
        __table_args__ = (UniqueConstraint("author_id", "title"),
                          Index(f"ix_{prefix}_books_price", "price"))

    return Base, Author, Book


def scenario(session: Session, prefix: str) -> None:
    """Everything the driver tests check, on a (sync) Session of either driver."""
    base, author_cls, book_cls = models(prefix)
    connection = session.connection()
    base.metadata.create_all(connection)
    authors, books = f"{prefix}_authors", f"{prefix}_books"

    # the ORM: ids come back with RETURNING (the SERIAL and the IDENTITY key)
    ann = author_cls(name="ann", books=[
        book_cls(title="First", price=decimal.Decimal("12.50"), meta={"pages": 120,
                                                                    "tags": ["x"]}),
        book_cls(title="Second", price=decimal.Decimal("7.10"), meta=None)])
    bob = author_cls(name="bob", active=False)
    session.add_all([ann, bob])
    session.flush()
    assert (ann.id, bob.id) == (1, 2)
    assert [b.id for b in ann.books] == [1, 2]
    session.commit()
    session.expire_all()

    loaded = session.scalars(select(author_cls).options(selectinload(author_cls.books))
                             .order_by(author_cls.id)).all()
    first = loaded[0].books[0]
    assert [a.name for a in loaded] == ["ann", "bob"]
    assert [a.active for a in loaded] == [True, False]
    assert isinstance(loaded[0].created, dt.datetime)
    assert loaded[0].created.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - loaded[0].created).total_seconds()) < 120
    assert first.price == decimal.Decimal("12.50") and isinstance(first.price,
                                                                  decimal.Decimal)
    assert first.meta == {"pages": 120, "tags": ["x"]}
    assert isinstance(first.isbn, uuid.UUID)
    assert loaded[0].books[1].meta is None and loaded[1].books == []
    session.expire_all()
    joined = session.scalars(select(author_cls).options(joinedload(author_cls.books))
                             .order_by(author_cls.id)).unique().all()
    assert [[b.title for b in a.books] for a in joined] == [["First", "Second"], []]
    assert session.scalar(select(book_cls.author_id).where(
        book_cls.meta["pages"].as_integer() == 120)) == 1
    assert session.scalar(select(func.count()).select_from(book_cls).where(
        book_cls.meta.has_key("tags"))) == 1
    # sum() of a numeric column is exact (no float in between); its value is read as text
    # here because Borealis describes an aggregate of a user table's column as text (the
    # server does not resolve result columns against the schema yet), which SQLAlchemy's
    # psycopg Numeric refuses to convert
    total = select(func.sum(book_cls.price, type_=String))
    assert str(session.scalar(total)) == "19.60"

    # Core: INSERT ... RETURNING, an upsert, UPDATE, DELETE
    isbn = uuid.uuid4()
    row = session.execute(insert(book_cls).values(
        author_id=2, title="Third", price=decimal.Decimal("0.30"), meta={"a": [1, 2]},
        isbn=isbn).returning(book_cls.id, book_cls.price, book_cls.meta, book_cls.isbn)).one()
    assert tuple(row) == (3, decimal.Decimal("0.30"), {"a": [1, 2]}, isbn)
    upsert = pg_insert(author_cls).values(name="bob", active=True)
    upsert = upsert.on_conflict_do_update(index_elements=["name"],
                                          set_={"active": upsert.excluded.active})
    assert session.execute(upsert.returning(author_cls.id, author_cls.active)).one() == (
        2, True)
    fresh = pg_insert(author_cls).values(name="cy").on_conflict_do_nothing()
    # the upsert took a sequence value before it found the conflict, as in PostgreSQL
    assert session.execute(fresh.returning(author_cls.id)).scalar_one() == 4
    changed = session.execute(update(book_cls).where(book_cls.price > 1).values(
        price=book_cls.price * 2))
    assert changed.rowcount == 2
    assert session.scalars(select(book_cls.price).order_by(book_cls.id)).all() == [
        decimal.Decimal("25.00"), decimal.Decimal("14.20"), decimal.Decimal("0.30")]
    assert session.execute(delete(book_cls).where(book_cls.title == "Third")).rowcount == 1
    session.commit()

    # reflection, as SQLAlchemy 2.1 reflects the same models from PostgreSQL 15
    inspector = inspect(session.connection())
    assert {authors, books} <= set(inspector.get_table_names())
    columns = {c["name"]: (str(c["type"]), c["nullable"], c["default"], c.get("identity"))
               for c in inspector.get_columns(books)}
    assert columns == {
        "id": ("INTEGER", False, None, {"always": False, "start": 1, "increment": 1,
                                        "minvalue": 1, "maxvalue": 2147483647, "cache": 1,
                                        "cycle": False}),
        "author_id": ("INTEGER", False, None, None),
        "title": ("VARCHAR(200)", False, None, None),
        "price": ("NUMERIC(10, 2)", False, None, None),
        "meta": ("JSONB", True, None, None),
        "isbn": ("UUID", False, None, None),
    }
    author_columns = {c["name"]: (str(c["type"]), c["nullable"], c["default"])
                      for c in inspector.get_columns(authors)}
    assert author_columns == {
        "id": ("INTEGER", False, f"nextval('{authors}_id_seq'::regclass)"),
        "name": ("VARCHAR(50)", False, None),
        "active": ("BOOLEAN", False, "true"),
        "created": ("TIMESTAMP", False, "now()"),
    }
    assert inspector.get_pk_constraint(books)["constrained_columns"] == ["id"]
    assert inspector.get_pk_constraint(books)["name"] == f"{books}_pkey"
    assert inspector.get_foreign_keys(books) == [{
        "name": f"{books}_author_id_fkey", "constrained_columns": ["author_id"],
        "referred_schema": None, "referred_table": authors, "referred_columns": ["id"],
        "options": {"ondelete": "CASCADE"}, "comment": None}]
    indexes = {i["name"]: (i["column_names"], i["unique"])
               for i in inspector.get_indexes(books)}
    assert indexes == {f"ix_{prefix}_books_price": (["price"], False),
                       f"{books}_author_id_title_key": (["author_id", "title"], True)}
    assert [(u["name"], u["column_names"]) for u in inspector.get_unique_constraints(books)
            ] == [(f"{books}_author_id_title_key", ["author_id", "title"])]
    assert [(u["name"], u["column_names"]) for u in inspector.get_unique_constraints(authors)
            ] == [(f"{authors}_name_key", ["name"])]
    reflected = MetaData()
    reflected.reflect(session.connection(), only=[authors, books])
    table = reflected.tables[books]
    assert [c.name for c in table.columns] == ["id", "author_id", "title", "price", "meta",
                                               "isbn"]
    assert [fk.target_fullname for fk in table.foreign_keys] == [f"{authors}.id"]
    assert isinstance(table.c.price.type, Numeric) and table.c.price.type.scale == 2
    assert table.c.id.identity is not None
    assert session.execute(select(table.c.title).order_by(table.c.id)).scalars().all() == [
        "First", "Second"]
    session.commit()

    base.metadata.drop_all(session.connection())
    session.commit()
    assert not {authors, books} & set(inspect(session.connection()).get_table_names())


def run_in_session(url: str, body: Callable[[Session], None]) -> None:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            body(session)
    finally:
        engine.dispose()


def test_core_orm_and_reflection_with_psycopg(cluster: Cluster) -> None:
    run_in_session(cluster.url("psycopg"), lambda s: scenario(s, "sa_pg"))


def test_core_orm_and_reflection_with_asyncpg(cluster: Cluster) -> None:
    pytest.importorskip("greenlet", reason="SQLAlchemy's asyncio extension needs greenlet")
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def main() -> None:
        engine = create_async_engine(cluster.url("asyncpg"))
        try:
            async with AsyncSession(engine) as session:
                await session.run_sync(lambda s: scenario(s, "sa_apg"))
        finally:
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_server_side_values_and_errors(cluster: Cluster, driver: str) -> None:
    """Server functions and typed errors through SQLAlchemy: version(), current_schema(),
    SHOW, a unique violation raised as IntegrityError."""
    from sqlalchemy import exc, text
    if driver == "asyncpg":
        pytest.importorskip("greenlet", reason="SQLAlchemy's asyncio extension needs greenlet")

    def body(session: Session) -> None:
        assert session.scalar(text("select current_schema()")) == "public"
        assert session.scalar(text("select version()")).startswith("PostgreSQL 15")
        assert session.scalar(text("show transaction isolation level")) == "serializable"
        session.execute(text(f"create table sa_{driver}_u (k int primary key)"))
        session.execute(text(f"insert into sa_{driver}_u values (1)"))
        with pytest.raises(exc.IntegrityError):
            session.execute(text(f"insert into sa_{driver}_u values (1)"))
        session.rollback()

    if driver == "psycopg":
        run_in_session(cluster.url("psycopg"), body)
        return
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def main() -> None:
        engine = create_async_engine(cluster.url("asyncpg"))
        try:
            async with AsyncSession(engine) as session:
                await session.run_sync(body)
        finally:
            await engine.dispose()

    asyncio.run(main())

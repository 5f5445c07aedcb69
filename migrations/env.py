"""Alembic environment: runs against the engine `addon.db.upgrade` hands over."""

from alembic import context
from sqlalchemy import create_engine

from addon.models import Base, UtcDateTime


def render_item(type_, obj, autogen_context):  # type: ignore[no-untyped-def]
    """Migrations store UtcDateTime as a plain timezone-aware DateTime column."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


config = context.config
target_metadata = Base.metadata

engine = config.attributes.get("engine")
if engine is None:
    # `alembic` command line: the URL comes from -x url=... or the settings
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url is None:
        from addon.settings import settings_from_environment

        url = settings_from_environment().database_url
    engine = create_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()

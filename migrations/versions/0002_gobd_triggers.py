"""GoBD triggers: the database refuses to change or delete issued invoices and their lines,
and to add lines to an issued invoice.

Hand-written, kept apart from the generated 0001 so regenerating that never loses it. The
column lists repeat `addon.invoicing.immutability` on purpose: a migration must keep meaning
what it meant when it ran, whatever the application code says later. The ORM guard there gives
the readable error; these triggers also stop raw SQL and other programs. Drafts stay free. The
audit log and the billing history are append-only.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FROZEN_INVOICE_COLUMNS = (
    "series", "number", "type_code", "customer_id", "ticket_id", "issued_at", "net", "vat",
    "gross", "snapshot", "pdf_path", "pdf_sha256", "xml_path", "xml_sha256", "access_key",
    "cancels_id",
)
FROZEN_LINE_COLUMNS = (
    "invoice_id", "position", "description", "quantity", "unit", "unit_price", "net", "explanation",
)
APPEND_ONLY_TABLES = ("audit_log", "billing_history")

_PG_CHANGED = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FROZEN_INVOICE_COLUMNS)
# json has no equality operator in PostgreSQL: compare the line columns as text.
_PG_LINE_CHANGED = " OR ".join(f"NEW.{c}::text IS DISTINCT FROM OLD.{c}::text" for c in FROZEN_LINE_COLUMNS)
_SQLITE_CHANGED = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FROZEN_INVOICE_COLUMNS)
_SQLITE_LINE_CHANGED = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FROZEN_LINE_COLUMNS)
_ISSUED_PARENT = "EXISTS (SELECT 1 FROM invoice WHERE invoice.id = OLD.invoice_id AND invoice.state <> 'draft')"
_ISSUED_NEW_PARENT = _ISSUED_PARENT.replace("OLD.", "NEW.")

POSTGRESQL_UP = (
    f"""
    CREATE FUNCTION ticketbill_guard_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            IF OLD.state <> 'draft' THEN
                RAISE EXCEPTION 'GoBD: issued invoice % cannot be deleted', OLD.number
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN OLD;
        END IF;
        IF OLD.state <> 'draft' AND ({_PG_CHANGED} OR NEW.state = 'draft') THEN
            RAISE EXCEPTION 'GoBD: issued invoice % cannot be changed', OLD.number
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER invoice_gobd BEFORE UPDATE OR DELETE ON invoice
    FOR EACH ROW EXECUTE FUNCTION ticketbill_guard_invoice()
    """,
    f"""
    CREATE FUNCTION ticketbill_guard_invoice_line() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF {_ISSUED_PARENT} AND (TG_OP = 'DELETE' OR {_PG_LINE_CHANGED}) THEN
            RAISE EXCEPTION 'GoBD: lines of issued invoice % cannot be changed or deleted',
                OLD.invoice_id USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER invoice_line_gobd BEFORE UPDATE OR DELETE ON invoice_line
    FOR EACH ROW EXECUTE FUNCTION ticketbill_guard_invoice_line()
    """,
    f"""
    CREATE FUNCTION ticketbill_guard_invoice_line_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF {_ISSUED_NEW_PARENT} THEN
            RAISE EXCEPTION 'GoBD: no line can be added to issued invoice %', NEW.invoice_id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER invoice_line_gobd_insert BEFORE INSERT ON invoice_line
    FOR EACH ROW EXECUTE FUNCTION ticketbill_guard_invoice_line_insert()
    """,
    """
    CREATE FUNCTION ticketbill_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'GoBD: % is append-only', TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    *(
        f"""
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION ticketbill_append_only()
        """
        for table in APPEND_ONLY_TABLES
    ),
)
POSTGRESQL_DOWN = (
    *(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in APPEND_ONLY_TABLES),
    "DROP TRIGGER IF EXISTS invoice_line_gobd_insert ON invoice_line",
    "DROP TRIGGER IF EXISTS invoice_line_gobd ON invoice_line",
    "DROP TRIGGER IF EXISTS invoice_gobd ON invoice",
    "DROP FUNCTION IF EXISTS ticketbill_append_only()",
    "DROP FUNCTION IF EXISTS ticketbill_guard_invoice_line_insert()",
    "DROP FUNCTION IF EXISTS ticketbill_guard_invoice_line()",
    "DROP FUNCTION IF EXISTS ticketbill_guard_invoice()",
)

SQLITE_UP = (
    f"""
    CREATE TRIGGER invoice_gobd_update BEFORE UPDATE ON invoice FOR EACH ROW
    WHEN OLD.state <> 'draft' AND ({_SQLITE_CHANGED} OR NEW.state = 'draft')
    BEGIN SELECT RAISE(ABORT, 'GoBD: an issued invoice cannot be changed'); END
    """,
    """
    CREATE TRIGGER invoice_gobd_delete BEFORE DELETE ON invoice FOR EACH ROW
    WHEN OLD.state <> 'draft'
    BEGIN SELECT RAISE(ABORT, 'GoBD: an issued invoice cannot be deleted'); END
    """,
    f"""
    CREATE TRIGGER invoice_line_gobd_update BEFORE UPDATE ON invoice_line FOR EACH ROW
    WHEN {_ISSUED_PARENT} AND ({_SQLITE_LINE_CHANGED})
    BEGIN SELECT RAISE(ABORT, 'GoBD: lines of an issued invoice cannot be changed'); END
    """,
    f"""
    CREATE TRIGGER invoice_line_gobd_delete BEFORE DELETE ON invoice_line FOR EACH ROW
    WHEN {_ISSUED_PARENT}
    BEGIN SELECT RAISE(ABORT, 'GoBD: lines of an issued invoice cannot be deleted'); END
    """,
    f"""
    CREATE TRIGGER invoice_line_gobd_insert BEFORE INSERT ON invoice_line FOR EACH ROW
    WHEN {_ISSUED_NEW_PARENT}
    BEGIN SELECT RAISE(ABORT, 'GoBD: no line can be added to an issued invoice'); END
    """,
    *(
        f"""
        CREATE TRIGGER {table}_append_only_{op_name.lower()} BEFORE {op_name} ON {table} FOR EACH ROW
        BEGIN SELECT RAISE(ABORT, 'GoBD: {table} is append-only'); END
        """
        for table in APPEND_ONLY_TABLES
        for op_name in ("UPDATE", "DELETE")
    ),
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS invoice_gobd_update",
    "DROP TRIGGER IF EXISTS invoice_gobd_delete",
    "DROP TRIGGER IF EXISTS invoice_line_gobd_update",
    "DROP TRIGGER IF EXISTS invoice_line_gobd_delete",
    "DROP TRIGGER IF EXISTS invoice_line_gobd_insert",
    *(
        f"DROP TRIGGER IF EXISTS {table}_append_only_{op_name}"
        for table in APPEND_ONLY_TABLES
        for op_name in ("update", "delete")
    ),
)


def _statements(up: bool) -> tuple[str, ...]:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        return POSTGRESQL_UP if up else POSTGRESQL_DOWN
    if dialect == "sqlite":
        return SQLITE_UP if up else SQLITE_DOWN
    raise RuntimeError(f"no GoBD triggers for database {dialect!r}")


def upgrade() -> None:
    for statement in _statements(up=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(up=False):
        op.execute(statement)

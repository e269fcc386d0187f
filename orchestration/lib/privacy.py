"""The right to erasure: `crm-loop forget CUSTOMER_ID` (no Dagster here).

Forgetting a customer replaces their customer_id, in every warehouse table that holds one (raw, marts,
analytics, campaigns, quarantine), by an anonymous token (`forgotten-<random>`), and erases their personal data:
name, e-mail, phone and e-mail hash become NULL, their consent false, lines kept as delivered that hold
them are cleared. Their rows stay, under the token, so every anonymised aggregate (revenue, customer counts,
campaign results) keeps its value. The exported contact lists (`$CRM_HOME/exports/*.csv`) get the same
treatment. Delivery keys derived from the id are re-derived from the token.

The erasure is recorded in `audit.erasures`: when, by whom, the token, how many rows each table had, and a
keyed hash of the customer_id (HMAC-SHA-256 with a secret kept in `$CRM_HOME/erasure.key`), never the id
itself. The hash is what lets the collect stage recognise the customer when a source delivers them again (a
customer snapshot, an old order file re-read): their rows arrive under the same token, without personal data
(`apply_erasures`). Forgetting the same customer twice changes nothing more.

Outside the warehouse's reach: the source's own files (the files source's inbox, the simulated world) belong
to the systems that delivered them, and Dagster's run history only holds counts and the few sample rows of a
failed gate (no names, e-mails or phones).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ERASURES_TABLE = "audit.erasures"
ERASURES_SCHEMA = {
    "erasure_id": "varchar",
    "subject_hash": "varchar",
    "token": "varchar",
    "requested_by": "varchar",
    "erased_at": "timestamp",
    "rows_anonymised": "varchar",
}
# Columns that identify a person (set to NULL for a forgotten customer), and consent (set to false).
PERSONAL_COLUMNS = ("full_name", "email", "phone", "email_hash")
CONSENT_COLUMNS = ("email_consent",)
# Columns that may hold a delivered line or row as text (cleared when they mention the customer).
TEXT_COPIES = ("_unreadable_line", "value", "row_values")
KEY_FILE = "erasure.key"
TOKEN_PREFIX = "forgotten-"


@dataclass(frozen=True)
class Erasure:
    """What `forget` did."""

    token: str
    already_forgotten: bool
    rows_by_table: dict[str, int]
    export_rows: int

    def describe(self, customer_id: str) -> str:
        if self.already_forgotten and not sum(self.rows_by_table.values()) and not self.export_rows:
            return f"customer {customer_id} was already forgotten (token {self.token}); nothing left to erase"
        lines = [f"forgot customer {customer_id}: now {self.token}; personal data erased"]
        lines += [f"  {table}: {rows} rows" for table, rows in sorted(self.rows_by_table.items()) if rows]
        if self.export_rows:
            lines.append(f"  exports: {self.export_rows} rows")
        if not sum(self.rows_by_table.values()) and not self.export_rows:
            lines.append("  (no rows held this customer yet; later deliveries of them arrive anonymised)")
        lines.append(f"recorded in {ERASURES_TABLE}")
        return "\n".join(lines)


def erasure_key(home: Path) -> bytes:
    """The secret that keys the subject hashes (created on first use, readable by its owner only)."""
    path = Path(home) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(32))
    return path.read_bytes()


def subject_hash(customer_id: str, key: bytes) -> str:
    return hmac.new(key, str(customer_id).encode(), hashlib.sha256).hexdigest()


def delivery_key(campaign_id: str, customer_id: str) -> str:
    """The execute stage's idempotency key of a contact (orchestration.stages.execute.assets.idempotency_key)."""
    return hashlib.sha256(f"{campaign_id}|{customer_id}".encode()).hexdigest()[:24]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: str) -> str:
    """`value` as an SQL string literal (tokens are `forgotten-` and hex digits: nothing to escape but quotes)."""
    return "'" + value.replace("'", "''") + "'"


def _base_tables(warehouse) -> dict[str, dict[str, str]]:
    """Every base table of the warehouse (schema.table) with its columns and their types (lower case)."""
    tables: dict[str, dict[str, str]] = {}
    for schema, table, column, kind in warehouse.table_columns().itertuples(index=False):
        tables.setdefault(f"{schema}.{table}", {})[column] = str(kind).lower()
    return tables


def _is_text(kind: str) -> bool:
    """A text column on DuckDB (`varchar`) or Spark (`string`)."""
    return kind.startswith(("varchar", "string", "text"))


def _anonymise_tables(warehouse, customer_id: str, token: str) -> dict[str, int]:
    """Replace `customer_id` by `token` in every table, erase the personal columns of those rows, and clear
    delivered text that mentions the customer. Returns the rows changed per table."""
    changed: dict[str, int] = {}
    for table, columns in _base_tables(warehouse).items():
        if table == ERASURES_TABLE:
            continue
        count = 0
        if "customer_id" in columns:
            assignments = {"customer_id": _text(token)}
            assignments |= {c: "null" for c in PERSONAL_COLUMNS if c in columns}
            assignments |= {c: "false" for c in CONSENT_COLUMNS if c in columns}
            assignments |= {c: "null" for c in TEXT_COPIES if c in columns and _is_text(columns[c])}
            if {"idempotency_key", "campaign_id"} <= columns.keys():
                assignments["idempotency_key"] = f"left(sha256(campaign_id || '|' || {_text(token)}), 24)"
            count = warehouse.update_rows(table, assignments, "customer_id = ?", [customer_id])
        mentions_the_customer = f"(^|[^A-Za-z0-9_]){re.escape(customer_id)}([^A-Za-z0-9_]|$)"
        for column in TEXT_COPIES:
            if column in columns and _is_text(columns[column]):  # a number named `value` holds no delivered text
                count += warehouse.update_rows(
                    table, {column: "null"}, f"regexp_matches({_quoted(column)}, ?)", [mentions_the_customer]
                )
        if count:
            changed[table] = int(count)
    return changed


def _anonymise_exports(exports_dir: Path, customer_id: str, token: str) -> int:
    """Anonymise the customer's rows in the exported contact lists (atomically, file by file)."""
    changed = 0
    folder = Path(exports_dir)
    if not folder.is_dir():
        return 0
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "customer_id" not in frame.columns:
            continue
        mine = frame["customer_id"] == customer_id
        if not mine.any():
            continue
        frame.loc[mine, "customer_id"] = token
        for column in ("email", "phone", "full_name"):
            if column in frame.columns:
                frame.loc[mine, column] = ""
        if {"idempotency_key", "campaign_id"} <= set(frame.columns):
            frame.loc[mine, "idempotency_key"] = [delivery_key(c, token) for c in frame.loc[mine, "campaign_id"]]
        partial = path.with_name(f".{path.name}.partial")
        frame.to_csv(partial, index=False)
        os.replace(partial, path)
        changed += int(mine.sum())
    return changed


def forget(
    warehouse, customer_id: str, *, home: Path, exports_dir: Path, requested_by: str = "crm-loop forget"
) -> Erasure:
    """Erase `customer_id`'s personal data from the warehouse and the exports, and record the erasure."""
    customer_id = str(customer_id).strip()
    if not customer_id:
        raise ValueError("a customer_id is required")
    key = erasure_key(home)
    hashed = subject_hash(customer_id, key)
    with warehouse.transaction():
        warehouse.ensure_table(ERASURES_TABLE, ERASURES_SCHEMA)
        found = warehouse.query(
            f"select token from {ERASURES_TABLE} where subject_hash = ? order by erased_at limit 1", [hashed]
        )
        known = not found.empty
        token = found["token"].iloc[0] if known else f"{TOKEN_PREFIX}{secrets.token_hex(8)}"
        erasure_id = secrets.token_hex(8)
        # Recorded before anything is anonymised: an erasure interrupted on an engine without transactions
        # (Spark) is finished by forgetting the customer again, under the same token.
        record = pd.DataFrame(
            {
                "erasure_id": [erasure_id],
                "subject_hash": [hashed],
                "token": [token],
                "requested_by": [requested_by],
                "erased_at": [pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us")],
                "rows_anonymised": [None],
            }
        ).astype({"rows_anonymised": "str"})
        warehouse.append_rows(ERASURES_TABLE, record)
        changed = _anonymise_tables(warehouse, customer_id, token)
        exported = _anonymise_exports(exports_dir, customer_id, token)
        if exported:
            changed["exports"] = exported
        warehouse.update_rows(
            ERASURES_TABLE,
            {"rows_anonymised": _text(json.dumps(changed, sort_keys=True))},
            "erasure_id = ?",
            [erasure_id],
        )
    return Erasure(token, known, {t: n for t, n in changed.items() if t != "exports"}, exported)


def forgotten_customers(warehouse) -> dict[str, str]:
    """subject hash -> token of every forgotten customer (empty when nobody was)."""
    if not warehouse.table_exists(ERASURES_TABLE):
        return {}
    frame = warehouse.query(f"select subject_hash, min(token) as token from {ERASURES_TABLE} group by subject_hash")
    return dict(zip(frame["subject_hash"], frame["token"], strict=True))


def apply_erasures(rows: pd.DataFrame, tokens: dict[str, str], key: bytes) -> pd.DataFrame:
    """`rows` of a delivery with every forgotten customer under their token and without personal data."""
    if not tokens or "customer_id" not in rows.columns or rows.empty:
        return rows
    ids = rows["customer_id"].dropna().unique()
    replaced = {customer: tokens[h] for customer in ids if (h := subject_hash(customer, key)) in tokens}
    if not replaced:
        return rows
    rows = rows.copy()
    mine = rows["customer_id"].isin(list(replaced))
    rows.loc[mine, "customer_id"] = rows.loc[mine, "customer_id"].map(replaced)
    for column in (*PERSONAL_COLUMNS, *TEXT_COPIES):
        if column in rows.columns:
            rows.loc[mine, column] = None
    for column in CONSENT_COLUMNS:
        if column in rows.columns:
            rows.loc[mine, column] = False
    return rows

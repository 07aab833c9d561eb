#!/bin/sh
# One-shot: create Temporal's two databases on Postgres and bring their schemas up to date.
# Runs in the temporalio/admin-tools image; safe to run again (create/setup are idempotent
# enough: "already exists" is tolerated, update-schema only applies what is missing).
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${POSTGRES_PWD:?}"
PORT="${DB_PORT:-5432}"
export SQL_PASSWORD="$POSTGRES_PWD"
tool() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$PORT" "$@"; }
for db in temporal temporal_visibility; do
  tool --db "$db" create || echo "database $db exists"
done
tool --db temporal setup-schema -v 0.0 || echo "temporal schema already set up"
tool --db temporal update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned
tool --db temporal_visibility setup-schema -v 0.0 || echo "visibility schema already set up"
tool --db temporal_visibility update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned
echo "Temporal schema ready"

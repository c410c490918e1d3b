#!/usr/bin/env bash
# Make sure the system packages pgtq's tests and demo need are present:
# a PostgreSQL server (initdb, pg_ctl, postgres), pgTAP, pg_prove,
# pg_cron (the tests of `pgtq cron install` run a cluster that preloads it),
# PgBouncer (the tests and `make chaos` run pgtq through it), for the
# dashboard's browser test Debian's chromium and its chromedriver, and
# Node.js with npm (the Node.js example's test installs `pg` with npm ci).
# PGXS (`make install`) comes with the PostgreSQL client package here.
# As root, missing packages are installed with apt-get. Otherwise the exact
# command to run is printed and the script fails, installing nothing.
set -euo pipefail

PG_MAJOR="${PGTQ_PG_MAJOR:-15}"
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_SHARE="/usr/share/postgresql/${PG_MAJOR}"

missing=()
[[ -x "${PG_BIN}/initdb" && -x "${PG_BIN}/pg_ctl" && -x "${PG_BIN}/postgres" ]] \
    || missing+=("postgresql-${PG_MAJOR}")
command -v psql >/dev/null 2>&1 || missing+=("postgresql-client-${PG_MAJOR}")
[[ -f "${PG_SHARE}/extension/pgtap.control" ]] || missing+=("postgresql-${PG_MAJOR}-pgtap")
command -v pg_prove >/dev/null 2>&1 || missing+=("libtap-parser-sourcehandler-pgtap-perl")
[[ -f "${PG_SHARE}/extension/pg_cron.control" ]] || missing+=("postgresql-${PG_MAJOR}-cron")
[[ -x /usr/sbin/pgbouncer ]] || command -v pgbouncer >/dev/null 2>&1 || missing+=("pgbouncer")
[[ -x /usr/bin/chromium ]] || missing+=("chromium")
[[ -x /usr/bin/chromedriver ]] || missing+=("chromium-driver")
command -v node >/dev/null 2>&1 || missing+=("nodejs")
command -v npm >/dev/null 2>&1 || missing+=("npm")

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "pgtq: missing system packages: ${missing[*]}" >&2
    echo "pgtq: install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "pgtq: installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# The tests start their own PgBouncers; a packaged service is not wanted.
if [[ " ${missing[*]} " == *" pgbouncer "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi

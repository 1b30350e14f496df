#!/usr/bin/env bash
# Local SQL servers standing in for shared cells' RDS instances (moto's RDS endpoints are fake
# hostnames): PostgreSQL 15 on 127.0.0.1:$GAMECELL_PG_PORT and MariaDB (the MySQL engine) on
# 127.0.0.1:$GAMECELL_MYSQL_PORT. The operator is pointed at them with
# GAMECELL_SQL_ENDPOINT_OVERRIDE_POSTGRES / _MYSQL (printed by `env`).
#
# Usage: hack/sqlstores.sh up|down|status|env
#   up      install the servers with apt-get when missing, create the data directories under
#           $ENV_DIR/sql, start both on loopback and wait until they answer (idempotent)
#   down    stop both (only the PIDs recorded under $PID_DIR) and delete their data: like moto,
#           `down` + `up` is an empty store
#   status  print whether each runs; exit 1 if one does not
#   env     print the export lines that point the operator at them
#
# TEST-ONLY settings: no TLS; the master user is `admin` with the password moto 5.2.5 puts in
# every RDS-managed master secret (`P@55w0rd!`), so the operator logs in with what it reads from
# Secrets Manager exactly as on RDS. Tenant logins use real password authentication
# (scram-sha-256 / mysql_native_password), so the tests prove a tenant gets in with its Secret's
# password and nowhere else. Servers run as the `postgres` / `mysql` system users when started
# as root. Logs: $LOG_DIR/postgres.log, $LOG_DIR/mariadb.log.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT="${GAMECELL_PG_PORT:-15432}"
MYSQL_PORT="${GAMECELL_MYSQL_PORT:-13306}"
PG_BIN="${GAMECELL_PG_BIN:-/usr/lib/postgresql/15/bin}"
MASTER_USER="${GAMECELL_SQL_MASTER_USER:-admin}"
MASTER_PASSWORD="${GAMECELL_SQL_MASTER_PASSWORD:-P@55w0rd!}"
SQL_DIR="$ENV_DIR/sql"
PG_DATA="$SQL_DIR/postgres"
MY_DATA="$SQL_DIR/mariadb"
MY_RUN="$SQL_DIR/mariadb-run"
PG_LOG="$LOG_DIR/postgres.log"
MY_LOG="$LOG_DIR/mariadb.log"
MY_PID_FILE="$PID_DIR/mariadb.pid"

as_user() { # as_user USER CMD...: run CMD as USER when we are root, else as ourselves
  local user=$1; shift
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

apt_install() {
  command -v apt-get >/dev/null || die "$* missing and there is no apt-get: install them"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  log "installing $* (apt-get)"
  (
    flock 9
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  ) 9>"${TMPDIR:-/tmp}/gamecell-sql-install.lock"
}

ensure_installed() {
  local want=()
  [ -x "$PG_BIN/postgres" ] || want+=(postgresql-15)
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || want+=(mariadb-server mariadb-client)
  if [ ${#want[@]} -gt 0 ]; then apt_install "${want[@]}"; fi
  [ -x "$PG_BIN/postgres" ] || die "PostgreSQL 15 not found in $PG_BIN after install"
  [ -x /usr/sbin/mariadbd ] || die "mariadbd not found after install"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_running() { as_user postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

pg_up() {
  if pg_running; then log "postgres: running on 127.0.0.1:$PG_PORT"; return; fi
  port_open "$PG_PORT" && die "port $PG_PORT is taken by something else (set GAMECELL_PG_PORT)"
  mkdir -p "$SQL_DIR" "$LOG_DIR"
  chmod 755 "$ENV_DIR" "$SQL_DIR" 2>/dev/null || true
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "postgres: initdb $PG_DATA"
    mkdir -p "$PG_DATA"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$PG_DATA"
    as_user postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 >"$SQL_DIR/initdb.log" 2>&1 || { tail -n 20 "$SQL_DIR/initdb.log" >&2; die "initdb failed"; }
    # TEST-ONLY: the bootstrap superuser `postgres` (used by this script over the socket) has no
    # password; every TCP login, the master's included, needs a real password.
    cat >"$PG_DATA/pg_hba.conf" <<HBA
local all postgres trust
host  all all 127.0.0.1/32 scram-sha-256
HBA
  fi
  touch "$PG_LOG"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$PG_LOG"
  log "postgres: starting on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
  as_user postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c password_encryption=scram-sha-256" start >/dev/null \
    || { tail -n 20 "$PG_LOG" >&2; die "postgres did not start"; }
  # The RDS-like master: may create roles and databases, is no superuser.
  as_user postgres "$PG_BIN/psql" -h "$PG_DATA" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$MASTER_USER') THEN
    CREATE ROLE "$MASTER_USER" LOGIN CREATEROLE CREATEDB PASSWORD '$MASTER_PASSWORD';
  END IF;
END \$\$;
GRANT CREATE ON DATABASE postgres TO "$MASTER_USER";
SQL
  log "postgres: ready"
}

pg_down() {
  if pg_running; then
    as_user postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null || true
    log "postgres: stopped"
  fi
}

my_pid() {
  [ -f "$MY_PID_FILE" ] || return 1
  local pid; pid=$(cat "$MY_PID_FILE")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q mariadbd || return 1
  echo "$pid"
}

my_client() { mariadb --socket="$MY_RUN/mysqld.sock" -uroot "$@"; }

my_up() {
  if my_pid >/dev/null; then log "mariadb: running on 127.0.0.1:$MYSQL_PORT"; return; fi
  port_open "$MYSQL_PORT" && die "port $MYSQL_PORT is taken by something else (set GAMECELL_MYSQL_PORT)"
  mkdir -p "$SQL_DIR" "$LOG_DIR" "$MY_RUN" "$PID_DIR"
  local user=(); [ "$(id -u)" -ne 0 ] || { user=(--user=mysql); chown mysql: "$MY_RUN"; }
  if [ ! -d "$MY_DATA/mysql" ]; then
    log "mariadb: mariadb-install-db $MY_DATA"
    mkdir -p "$MY_DATA"
    [ "$(id -u)" -ne 0 ] || chown mysql: "$MY_DATA"
    mariadb-install-db "${user[@]}" --datadir="$MY_DATA" --auth-root-authentication-method=socket \
      --skip-test-db >"$SQL_DIR/mariadb-install.log" 2>&1 || { tail -n 20 "$SQL_DIR/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
  fi
  touch "$MY_LOG"
  [ "$(id -u)" -ne 0 ] || chown mysql: "$MY_LOG"
  log "mariadb: starting on 127.0.0.1:$MYSQL_PORT (log: $MY_LOG)"
  /usr/sbin/mariadbd --no-defaults "${user[@]}" --datadir="$MY_DATA" --bind-address=127.0.0.1 \
    --port="$MYSQL_PORT" --socket="$MY_RUN/mysqld.sock" --pid-file="$MY_RUN/mariadbd.pid" \
    --skip-name-resolve --log-error="$MY_LOG" >/dev/null 2>&1 &
  echo $! >"$MY_PID_FILE"
  wait_for "mariadb on 127.0.0.1:$MYSQL_PORT" 60 my_client -e "SELECT 1" \
    || { tail -n 20 "$MY_LOG" >&2; die "mariadb did not start"; }
  my_client --batch <<SQL
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
CREATE USER IF NOT EXISTS '$MASTER_USER'@'%' IDENTIFIED BY '$MASTER_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$MASTER_USER'@'%' WITH GRANT OPTION;
SQL
  log "mariadb: ready"
}

my_down() {
  local pid
  if pid=$(my_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    log "mariadb: stopped"
  fi
  rm -f "$MY_PID_FILE"
}

print_env() {
  echo "export GAMECELL_SQL_ENDPOINT_OVERRIDE_POSTGRES=127.0.0.1:$PG_PORT"
  echo "export GAMECELL_SQL_ENDPOINT_OVERRIDE_MYSQL=127.0.0.1:$MYSQL_PORT"
}

case "${1:-}" in
  up) ensure_installed; pg_up; my_up ;;
  down) pg_down; my_down; rm -rf "$SQL_DIR" ;;
  status)
    rc=0
    if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; rc=1; fi
    if my_pid >/dev/null; then echo "mariadb: running on 127.0.0.1:$MYSQL_PORT"; else echo "mariadb: stopped"; rc=1; fi
    exit $rc ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks.
#
#   eval "$(scripts/pgcluster.sh start DIR [durable])"   # prints export lines
#   scripts/pgcluster.sh stop DIR
#
# It installs Debian's postgresql package when initdb is missing, runs the
# server as a non-root user (initdb refuses root: the package's postgres
# user, else a lamina-pg system user), with password (scram)
# authentication over TCP, on the port PGPORT names when it is set (it
# fails if that port is taken), else on a free port between 20000 and
# 32000 (the port is in DIR/port). The password goes to DIR/pgpass only;
# the printed LAMINA_PG_URL has none, PGPASSFILE points at the file.
# Without "durable" the cluster runs with fsync=off (tests); with it, with
# PostgreSQL's defaults (benchmarks against bbolt, which fsyncs).
set -euo pipefail
cmd=${1:?usage: pgcluster.sh start|stop DIR [durable]}
dir=${2:?usage: pgcluster.sh start|stop DIR [durable]}
mode=${3:-}

bindir() {
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$d" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >/dev/null
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$d"
}

as_user() {
  if [ "$(id -u)" -ne 0 ]; then "$@"; return; fi
  local u=postgres
  if ! id "$u" >/dev/null 2>&1; then
    u=lamina-pg
    id "$u" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$u"
  fi
  runuser -u "$u" -- "$@"
}

case "$cmd" in
start)
  # PGPORT, when set, is the one port tried (initdb reads it too).
  # Set but empty is unset (initdb refuses PGPORT="").
  [ -n "${PGPORT:-}" ] || unset PGPORT
  if [ -n "${PGPORT:-}" ]; then
    case "$PGPORT" in
      *[!0-9]*) echo "pgcluster: PGPORT=$PGPORT is not a port number" >&2; exit 2 ;;
    esac
    if [ "${#PGPORT}" -gt 5 ] || [ "$PGPORT" -lt 1 ] || [ "$PGPORT" -gt 65535 ]; then
      echo "pgcluster: PGPORT=$PGPORT is not a port number (1 to 65535)" >&2
      exit 2
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null; then
      echo "pgcluster: port $PGPORT (PGPORT) is taken" >&2
      exit 1
    fi
  fi
  bin=$(bindir)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 755 "$dir"
  pw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  pwfile=$(mktemp)
  echo "$pw" >"$pwfile"
  chmod 644 "$pwfile"
  mkdir -p "$dir/data" "$dir/sock"
  [ "$(id -u)" -ne 0 ] || chown "$(as_user id -un)" "$dir/data" "$dir/sock"
  as_user "$bin/initdb" -D "$dir/data" -U lamina --pwfile="$pwfile" -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
    { echo "pgcluster: initdb failed ($dir/initdb.log):" >&2; tail -5 "$dir/initdb.log" >&2; exit 1; }
  rm -f "$pwfile"
  # A port free when probed can be taken before the server binds it (the
  # range meets the kernel's ephemeral ports): try a few, and show the
  # server's log when none works.
  port=""
  attempts="1 2 3 4 5"
  [ -z "${PGPORT:-}" ] || attempts=1
  for attempt in $attempts; do
    p=${PGPORT:-}
    for _ in $(seq 50); do
      [ -z "$p" ] || break
      q=$(( 20000 + RANDOM % 12000 ))
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$q") 2>/dev/null; then p=$q; break; fi
    done
    [ -n "$p" ] || { echo "no free port" >&2; exit 1; }
    opts="-h 127.0.0.1 -p $p -k $dir/sock -c max_connections=200 -c shared_buffers=64MB"
    [ "$mode" = durable ] || opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -o "$opts" -w start >/dev/null; then
      port=$p
      break
    fi
    echo "pgcluster: start on port $p failed (attempt $attempt):" >&2
    tail -5 "$dir/data/server.log" >&2 || true
    as_user "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  done
  [ -n "$port" ] || { echo "pgcluster: PostgreSQL did not start" >&2; exit 1; }
  echo "$port" >"$dir/port"
  umask 077
  echo "127.0.0.1:$port:*:lamina:$pw" >"$dir/pgpass"
  PGPASSFILE="$dir/pgpass" "$bin/createdb" -h 127.0.0.1 -p "$port" -U lamina lamina
  echo "export LAMINA_PG_URL='postgresql://lamina@127.0.0.1:$port/lamina' PGPASSFILE='$dir/pgpass' LAMINA_PG_BIN='$bin'"
  ;;
stop)
  bin=$(bindir)
  [ -d "$dir/data" ] && as_user "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: pgcluster.sh start|stop DIR [durable]" >&2
  exit 2
  ;;
esac

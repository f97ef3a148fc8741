#!/usr/bin/env bash
# bench-tasks.sh: how fast the API lists and reads tasks, against a baseline that runs the same
# generated queries with nothing around them.
#
#   scripts/bench-tasks.sh                  # 10,000 tasks in 10 tenants
#   TASKS=1000000 scripts/bench-tasks.sh    # 1,000,000 tasks in 1,000 tenants
#
# It builds bin/tasker, bin/seed and bin/baseline; migrates; seeds (cmd/seed: a "bench" tenant
# whose BENCH project holds BENCH_TASKS tasks, the other tasks spread over TENANTS tenants);
# starts the API on 127.0.0.1:8089 and two baselines (cmd/baseline): one as a superuser, so
# without RLS, on :8090, and one as tasker_app with the bench tenant set, reading through
# tenancy.Read as the API does, on :8091; signs in; warms up; runs wrk against each; prints a summary and the query
# plans as tasker_app with the bench tenant set. Everything it starts is stopped on exit.
#
# Environment:
#   DATABASE_URL  a superuser URL (default: a database "tasker_bench" in the private cluster of
#                 scripts/devdb.sh, so the development database is left alone)
#   TASKS (10000), TENANTS (TASKS/1000, at least 1), BENCH_TASKS (2000)
#   RESEED=1      seed again even if the database already holds a seed of TASKS tasks
#   DURATION (15s), THREADS (2), CONNS (16), LIMIT (50): the wrk runs and the page size
#
# Needs wrk (Debian/Ubuntu: apt-get install wrk), psql and curl. Talks to 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

TASKS=${TASKS:-10000}
TENANTS=${TENANTS:-$(( TASKS / 1000 > 0 ? TASKS / 1000 : 1 ))}
BENCH_TASKS=${BENCH_TASKS:-2000}
DURATION=${DURATION:-15s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
LIMIT=${LIMIT:-50}
api=http://127.0.0.1:8089
base=http://127.0.0.1:8090
base_rls=http://127.0.0.1:8091

for tool in wrk psql curl go; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    case $tool in
      wrk) echo "bench-tasks: wrk is not installed. Debian/Ubuntu: apt-get install -y wrk; macOS: brew install wrk" >&2 ;;
      psql) echo "bench-tasks: psql is not installed (Debian/Ubuntu: apt-get install -y postgresql-client)" >&2 ;;
      *) echo "bench-tasks: $tool is not installed" >&2 ;;
    esac
    exit 1
  fi
done
for u in "$api" "$base" "$base_rls"; do
  if curl -s -o /dev/null --max-time 1 "$u/"; then
    echo "bench-tasks: something already listens on ${u#http://}; stop it first" >&2
    exit 1
  fi
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '\n== %s\n' "$*" >&2; }
# field NAME: the string value of NAME in the JSON object on stdin (flat objects only).
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
# wait_for URL [CURL ARGS...]: until URL answers 200, for at most 30 seconds.
wait_for() {
  local url=$1 i; shift
  for i in $(seq 1 60); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url")" = 200 ]; then return 0; fi
    sleep 0.5
  done
  echo "bench-tasks: $url did not answer 200 within 30s" >&2
  return 1
}

log "build"
go build -o bin/tasker ./cmd/server
go build -o bin/seed ./cmd/seed
go build -o bin/baseline ./cmd/baseline

url=$(DEVDB_NAME=${DEVDB_NAME:-tasker_bench} scripts/devdb.sh url)
psql_() { psql "$url" -X -q -v ON_ERROR_STOP=1 "$@"; }

log "migrate"
DATABASE_URL=$url LOG_LEVEL=warn bin/tasker migrate

log "seed: $TASKS tasks, $TENANTS tenants + bench ($BENCH_TASKS tasks in BENCH)"
have=$(psql_ -Atc "SELECT count(*) FROM tasks")
if [ "${RESEED:-0}" = 1 ] || [ "$have" != "$TASKS" ]; then
  bin/seed -database-url "$url" -tenants "$TENANTS" -tasks "$TASKS" -bench-tasks "$BENCH_TASKS" -reset >"$tmp/seed.json"
else
  echo "the database already holds $have tasks: reusing its seed (RESEED=1 to seed again)" >&2
  bin/seed -database-url "$url" -reuse >"$tmp/seed.json"
fi
seed=$(tail -n 1 "$tmp/seed.json")
tenant=$(field tenant_id <<<"$seed")
project=$(field project_id <<<"$seed")
task=$(field task_id <<<"$seed")
echo "bench tenant $tenant, project $project, task $task" >&2
psql_ -c "VACUUM ANALYZE"

log "start the API and the baselines"
bin/tasker keygen >"$tmp/jwt.pem"
DATABASE_URL=$url LISTEN_ADDR=127.0.0.1:8089 LOG_LEVEL=warn JWT_SIGNING_KEYS_FILE=$tmp/jwt.pem \
  LOGIN_RATE_PER_IP=1000000 LOGIN_RATE_PER_ACCOUNT=1000000 ACCESS_TOKEN_TTL=1h \
  bin/tasker serve >"$tmp/server.log" 2>&1 &
pids+=($!)
bin/baseline -listen 127.0.0.1:8090 -database-url "$url" -tenant "$tenant" >"$tmp/baseline.log" 2>&1 &
pids+=($!)
bin/baseline -listen 127.0.0.1:8091 -database-url "$url" -tenant "$tenant" -rls >"$tmp/baseline-rls.log" 2>&1 &
pids+=($!)
wait_for "$api/readyz" || { cat "$tmp/server.log" >&2; exit 1; }
wait_for "$base/tasks/$task" || { cat "$tmp/baseline.log" >&2; exit 1; }
wait_for "$base_rls/tasks/$task" || { cat "$tmp/baseline-rls.log" >&2; exit 1; }

login=$(curl -s --max-time 10 "$api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"tenant_slug\":\"$(field tenant_slug <<<"$seed")\",\"email\":\"$(field email <<<"$seed")\",\"password\":\"$(field password <<<"$seed")\"}")
token=$(field access_token <<<"$login")
if [ -z "$token" ]; then
  echo "bench-tasks: login failed: $login" >&2
  exit 1
fi
auth="Authorization: Bearer $token"

# The targets, in the order of the summary: name, URL, and whether it needs the token.
names=("baseline list (no RLS)" "baseline list (RLS)" "API list" "API get task" "baseline get (RLS)" "baseline get (no RLS)")
urls=("$base/projects/$project/tasks?limit=$LIMIT" "$base_rls/projects/$project/tasks?limit=$LIMIT"
  "$api/v1/projects/$project/tasks?limit=$LIMIT" "$api/v1/tasks/$task" "$base_rls/tasks/$task" "$base/tasks/$task")
authed=(0 0 1 1 0 0)

hdr() { if [ "${authed[$1]}" = 1 ]; then printf '%s\n' -H "$auth"; fi; }
skip=()
for i in "${!names[@]}"; do
  mapfile -t h < <(hdr "$i")
  code=$(curl -s -o "$tmp/check.json" -w '%{http_code}' --max-time 10 "${h[@]}" "${urls[$i]}")
  if [ "$code" != 200 ]; then
    echo "bench-tasks: ${names[$i]}: ${urls[$i]} answered $code, skipping it: $(head -c 300 "$tmp/check.json")" >&2
    skip[$i]=1
  fi
done

log "warm up"
for i in "${!names[@]}"; do
  [ -n "${skip[$i]:-}" ] && continue
  mapfile -t h < <(hdr "$i")
  timeout 30 wrk -t1 -c4 -d3s "${h[@]}" "${urls[$i]}" >/dev/null
done

# ms VALUE: a wrk latency (850.00us, 1.23ms, 1.02s, 1.50m) in milliseconds.
ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) }
    else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
    else if (v ~ /m$/) { sub(/m$/, "", v); v = v * 60000 }
    printf "%.2f", v }'
}

rps=() p50=() p99=() errs=()
for i in "${!names[@]}"; do
  [ -n "${skip[$i]:-}" ] && continue
  log "wrk -t$THREADS -c$CONNS -d$DURATION --latency: ${names[$i]}"
  mapfile -t h < <(hdr "$i")
  out=$(timeout 300 wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${h[@]}" "${urls[$i]}")
  echo "$out" >&2
  rps[$i]=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50[$i]=$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99[$i]=$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  errs[$i]=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {for (f = 3; f <= NF; f++) n += $f + 0} END {print n + 0}' <<<"$out")
done

log "EXPLAIN (ANALYZE, BUFFERS) as tasker_app, app.tenant_id = bench"
# The generated SQL of a query in gen/db, and its arguments in the order of its Params struct:
# the tenant, the project or task id, the page size plus one (as the API asks), false for flags,
# NULL else.
sql_of() { awk -v c="$1" '$0 ~ "^const " c " = `" {on = 1; next} on && /^`/ {exit} on' gen/db/tasks.sql.go; }
args_of() {
  awk -v s="$1" -v id="$2" -v tenant="$tenant" -v lim="$(( LIMIT + 1 ))" '
    $0 ~ "^type " s " struct" {on = 1; next} on && /^}/ {exit}
    on { f = $1; t = $2
         if (f == "TenantID") a = "'"'"'" tenant "'"'"'"
         else if (f == "ProjectID" || f == "ID") a = "'"'"'" id "'"'"'"
         else if (f == "Lim") a = lim
         else if (f == "AfterPosition") a = "'"'"'-Infinity'"'"'"
         else if (f == "AfterID") a = "'"'"'00000000-0000-0000-0000-000000000000'"'"'"
         else if (t == "bool") a = "false"
         else a = "NULL"
         out = out (out == "" ? "" : ", ") a }
    END { print out }' gen/db/tasks.sql.go
}
explain() { # NAME CONST ARGS
  printf '\n-- %s\n' "$1"
  psql_ <<SQL
SET ROLE tasker_app;
BEGIN;
SELECT set_config('app.tenant_id', '$tenant', true) \\g /dev/null
PREPARE q AS $(sql_of "$2");
-- The plan the server runs once the statement is cached (it prepares every query).
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q($3);
ROLLBACK;
SQL
}
explain "ListProjectTasks (project $project, limit $(( LIMIT + 1 )))" listProjectTasks \
  "$(args_of ListProjectTasksParams "$project")"
explain "GetTask ($task)" getTask "'$tenant', '$task'"

log "summary: $TASKS tasks, $TENANTS tenants; BENCH project $BENCH_TASKS tasks; limit=$LIMIT; wrk -t$THREADS -c$CONNS -d$DURATION"
printf '%-26s %10s %9s %9s %8s\n' target req/s "p50 ms" "p99 ms" errors
for i in "${!names[@]}"; do
  if [ -n "${skip[$i]:-}" ]; then
    printf '%-26s %10s\n' "${names[$i]}" skipped
  else
    printf '%-26s %10s %9s %9s %8s\n' "${names[$i]}" "${rps[$i]}" "${p50[$i]}" "${p99[$i]}" "${errs[$i]}"
  fi
done
ratio() { # API index, baseline index
  if [ -n "${rps[$1]:-}" ] && [ -n "${rps[$2]:-}" ]; then
    awk -v a="${rps[$1]}" -v b="${rps[$2]}" 'BEGIN { printf "%.2f", a / b }'
  else
    echo n/a
  fi
}
echo "API/baseline req/s, list: $(ratio 2 0) (no RLS), $(ratio 2 1) (RLS); get: $(ratio 3 5) (no RLS), $(ratio 3 4) (RLS)"

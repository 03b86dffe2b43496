#!/usr/bin/env bash
# steward against the gateways people would pick instead, on this machine,
# in one run: the LLM door, non-streaming, in front of a canned nginx
# upstream. A script, not CI: it installs the peers and takes minutes.
#
#   bench/peers.sh                  # direct, the bare hop, steward (needs
#                                   # nginx, hey, wrk)
#   bench/peers.sh --peers          # also LiteLLM (pip litellm[proxy]) and
#                                   # Portkey (npm @portkey-ai/gateway)
#
# Latency: `hey -z $SECS -q 10 -c 5` (50 req/s, closed loop, 5 clients).
# Throughput: `wrk -t2 -c32 -d$SECS`. RSS: VmRSS of the gateway's processes
# idle (before the load) and after both loads. Prints a Markdown table.
# Env: SECS (default 10), STEWARD_BIN (default: target/release/steward,
# built with `cargo build --release` if missing), WORK (default a temp dir).
set -euo pipefail

SECS=${SECS:-10}
PEERS=0
[ "${1:-}" = "--peers" ] && PEERS=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/steward-peers.XXXXXX)}
UPSTREAM_PORT=18080 FLOOR_PORT=18081 STEWARD_PORT=18082 LITELLM_PORT=18083 PORTKEY_PORT=18787
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
PIDS=()
tree() { # pid: it and all its descendants (npx runs node a few levels down)
  local p=$1 c
  echo "$p"
  for c in $(pgrep -P "$p" || true); do tree "$c"; done
}

stop_tree() { # pid...: stops them with their descendants (npx's node, LiteLLM's workers)
  local all p
  all=$(for p in "$@"; do tree "$p"; done)
  for p in $all; do kill "$p" 2>/dev/null || true; done
}

cleanup() { stop_tree "${PIDS[@]}"; wait 2>/dev/null || true; }
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "needs $1: apt-get install -y $2" >&2; exit 1; }; }
need nginx nginx-light
need hey hey
need wrk wrk

# --- the canned upstream ------------------------------------------------
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    keepalive_requests 1000000;
    location / {
      default_type application/json;
      return 200 '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}';
    }
  }
}
NGINX
nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

wait_http() { # url [header]
  for _ in $(seq 1 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' ${2:+-H "$2"} -d "$BODY" "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  echo "no 200 from $1 within 60 s" >&2; return 1
}

rss_mb() { # pid...: VmRSS of the processes and all their descendants, MB
  local total=0 p kb
  for p in $(for q in "$@"; do tree "$q"; done | sort -u); do
    kb=$(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  awk -v kb="$total" 'BEGIN{printf "%.0f MB", kb/1024}'
}

ROWS=()
measure() { # name url header pids...
  local name=$1 url=$2 header=$3; shift 3
  wait_http "$url" "$header"
  local idle="—"; [ $# -gt 0 ] && idle=$(rss_mb "$@")
  local h; h=$(hey -z "${SECS}s" -q 10 -c 5 -m POST -T application/json ${header:+-H "$header"} -d "$BODY" "$url")
  local p50 p99
  p50=$(awk '/ 50% in/{printf "%.2f ms", $3*1000}' <<<"$h")
  p99=$(awk '/ 99% in/{printf "%.2f ms", $3*1000}' <<<"$h")
  cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["content-type"] = "application/json"
LUA
  # A Lua long string: the value may hold quotes (Portkey's JSON config).
  [ -n "$header" ] && echo "wrk.headers[\"${header%%:*}\"] = [[${header#*: }]]" >> "$WORK/post.lua"
  local w; w=$(wrk -t2 -c32 -d"${SECS}s" -s "$WORK/post.lua" "$url")
  local rps; rps=$(awk '/Requests\/sec/{printf "%.0f", $2}' <<<"$w")
  local non2xx; non2xx=$(awk '/Non-2xx/{print $NF}' <<<"$w")
  local after="—"; [ $# -gt 0 ] && after=$(rss_mb "$@")
  ROWS+=("| $name | $p50 | $p99 | $rps${non2xx:+ ($non2xx non-2xx)} | $idle idle, $after after |")
}

# --- direct ----------------------------------------------------------------
measure "direct to nginx" "http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions" ""

# --- the floor: a bare proxy hop on steward's HTTP stack --------------------
# The gateway bench's no-op proxy (axum server, reqwest client, streamed body;
# no auth, policy, store or audit), served by the bench binary itself.
GATEWAY_BENCH=$(cd "$ROOT" && cargo bench -q --locked -p steward --bench gateway --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for m in map(json.loads, sys.stdin):
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "gateway" and m.get("executable"): print(m["executable"])')
BENCH_NOOP_PROXY=127.0.0.1:$FLOOR_PORT BENCH_UPSTREAM=http://127.0.0.1:$UPSTREAM_PORT "$GATEWAY_BENCH" >"$WORK/floor.log" 2>&1 &
FLOOR_PID=$!; PIDS+=($FLOOR_PID)
measure "bare proxy hop (steward's HTTP stack, no pipeline)" "http://127.0.0.1:$FLOOR_PORT/v1/chat/completions" "" "$FLOOR_PID"
stop_tree "$FLOOR_PID"

# --- steward ---------------------------------------------------------------
# The bench profile is the release profile's settings, and the gateway bench
# above built this binary with it.
BIN=${STEWARD_BIN:-$ROOT/target/release/steward}
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked -p steward)
mkdir -p "$WORK/steward"
echo "sk-bench-0123456789abcdef0123456789" > "$WORK/steward/llm.key"; chmod 600 "$WORK/steward/llm.key"
cat > "$WORK/steward/steward.toml" <<TOML
[agent]
name = "peers"
[gateway]
listen = "127.0.0.1:$STEWARD_PORT"
[state]
dir = "./state"
[credentials.llm]
source = "file:llm.key"
[llm.openai]
kind = "openai"
base_url = "http://127.0.0.1:$UPSTREAM_PORT"
credential = "llm"
[spend]
daily_cap_usd = 1000000.0
[loop_breaker]
max_identical = 0
TOML
"$BIN" -c "$WORK/steward/steward.toml" run 2>"$WORK/steward/run.log" &
STEWARD_PID=$!; PIDS+=($STEWARD_PID)
for _ in $(seq 1 100); do [ -s "$WORK/steward/state/agent.token" ] && break; sleep 0.1; done
TOKEN=$(cat "$WORK/steward/state/agent.token")
measure "steward $(cd "$ROOT" && git rev-parse --short HEAD)" \
  "http://127.0.0.1:$STEWARD_PORT/llm/openai/v1/chat/completions" "Authorization: Bearer $TOKEN" "$STEWARD_PID"

if [ "$PEERS" = 1 ]; then
  # --- LiteLLM ---------------------------------------------------------------
  python3 -m venv "$WORK/litellm"
  "$WORK/litellm/bin/pip" install -q 'litellm[proxy]'
  cat > "$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$UPSTREAM_PORT/v1
      api_key: sk-bench
YAML
  # LiteLLM refuses to start without a strong master key; the agent presents it.
  LITELLM_KEY="sk-bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  LITELLM_MASTER_KEY=$LITELLM_KEY "$WORK/litellm/bin/litellm" --config "$WORK/litellm.yaml" \
    --host 127.0.0.1 --port "$LITELLM_PORT" >"$WORK/litellm.log" 2>&1 &
  LITELLM_PID=$!; PIDS+=($LITELLM_PID)
  measure "LiteLLM proxy $("$WORK/litellm/bin/pip" show litellm | awk '/^Version/{print $2}')" \
    "http://127.0.0.1:$LITELLM_PORT/v1/chat/completions" "Authorization: Bearer $LITELLM_KEY" "$LITELLM_PID"
  stop_tree "$LITELLM_PID"

  # --- Portkey -----------------------------------------------------------------
  mkdir -p "$WORK/portkey" && (cd "$WORK/portkey" && npm init -y >/dev/null && npm install -s @portkey-ai/gateway >/dev/null)
  (cd "$WORK/portkey" && PORT=$PORTKEY_PORT exec npx @portkey-ai/gateway --port=$PORTKEY_PORT) >"$WORK/portkey.log" 2>&1 &
  PORTKEY_PID=$!; PIDS+=($PORTKEY_PID)
  # Portkey takes the provider and the upstream from headers; measure() takes one
  # header, so the custom host goes through a config header.
  CFG=$(printf '{"provider":"openai","api_key":"sk-bench","custom_host":"http://127.0.0.1:%s/v1"}' "$UPSTREAM_PORT")
  measure "Portkey gateway $(cd "$WORK/portkey" && node -p 'require("@portkey-ai/gateway/package.json").version')" \
    "http://127.0.0.1:$PORTKEY_PORT/v1/chat/completions" "x-portkey-config: $CFG" "$PORTKEY_PID"
fi

echo
echo "$(nproc) cores, $(uname -r), $(date -u +%F); hey -q 10 -c 5 for ${SECS}s; wrk -t2 -c32 for ${SECS}s"
echo
echo "| path | p50 | p99 | max req/s | RSS |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"

#!/bin/sh
#   Set up, build and run the main demo: an echo server and a client in two
#   unrelated processes over shm://.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
endpoint="shm:///tmp/shmipc-demo-$$"
build/examples/ipc-server "$endpoint" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 0.3
build/examples/ipc-client "$endpoint" 100000
kill -TERM $server
wait $server
trap - EXIT

#!/usr/bin/env bash
# Draws docs/burn-midrun.png: three udpservers and a udpproxy as processes,
# a 9-second flood from the bench, s1 told by the bench to burn 80% of a
# core from 3 s to 6 s (-burden, marked on the plot).
# Run from the repository: bash bench/demo-burn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'kill $(cat "$dir"/pids 2>/dev/null) 2>/dev/null; rm -rf "$dir"' EXIT
go build -o "$dir"/ ./cmd/udpserver ./cmd/udpproxy ./bench
for i in 1 2 3; do
	"$dir"/udpserver -quiet -name s$i -addr 127.0.0.1:2700$i -status-addr 127.0.0.1:2710$i 2>/dev/null &
	echo $! >>"$dir"/pids
done
"$dir"/udpproxy -addr 127.0.0.1:27000 -server 127.0.0.1:27001,127.0.0.1:27101 \
	-server 127.0.0.1:27002,127.0.0.1:27102 -server 127.0.0.1:27003,127.0.0.1:27103 2>/dev/null &
echo $! >>"$dir"/pids
sleep 1 # the proxy's first polls
"$dir"/bench -target 127.0.0.1:27000 -c 32 -d 9s -no-progress -plot docs/burn-midrun.png \
	-burden 127.0.0.1:27101=0.8@3s-6s

#!/usr/bin/env bash
# idlepair.sh BIN_A BIN_B N [WINDOWS] [SECS]: what polling N servers costs an
# idle udpproxy, two builds side by side. Each proxy polls its own
# statusfleet of N status ports (with PROXY_FLAGS, e.g. "-poll-budget -1");
# each window prints both proxies' CPU in % of one core, the run time of all
# their threads (/proc/PID/task/*/schedstat), and the medians come last.
# The machine's hiccups hit both in the same window: compare the two, not
# runs made at different times.
#
#	go build -o /tmp/udpproxy-new ./cmd/udpproxy
#	git stash; go build -o /tmp/udpproxy-old ./cmd/udpproxy; git stash pop
#	bash bench/idlepair.sh /tmp/udpproxy-old /tmp/udpproxy-new 256 8
set -euo pipefail
A=$1 B=$2 N=$3 W=${4:-8} S=${5:-5}
cd "$(dirname "$0")/.."
fleet=$(mktemp -d)/statusfleet
go build -o "$fleet" ./bench/statusfleet
ba=$((20001 + RANDOM % 10000)); bb=$((ba + 2*N + 10))
secs=$(( (W+2)*S + 10 ))
"$fleet" -base $ba -n "$N" -secs $secs & fa=$!
"$fleet" -base $bb -n "$N" -secs $secs & fb=$!
# -server CALC,STATUS for each: the calculator ports are never used idle.
list() { for ((i=0;i<N;i++)); do echo -n " -server 127.0.0.1:$(($1+N+i)),127.0.0.1:$(($1+i))"; done; }
sleep 1
# shellcheck disable=SC2046,SC2086
"$A" -addr 127.0.0.1:0 ${PROXY_FLAGS:-} $(list $ba) >/dev/null 2>&1 & pa=$!
# shellcheck disable=SC2046,SC2086
"$B" -addr 127.0.0.1:0 ${PROXY_FLAGS:-} $(list $bb) >/dev/null 2>&1 & pb=$!
trap 'kill $pa $pb $fa $fb 2>/dev/null || true' EXIT
sleep "$S"
ns() { cat /proc/"$1"/task/*/schedstat | awk '{s+=$1} END{printf "%.0f", s}'; }
pct() { awk -v a="$1" -v b="$2" -v s="$S" 'BEGIN{printf "%.3f", (b-a)/1e7/s}'; }
ra=(); rb=()
for ((w=0; w<W; w++)); do
	a0=$(ns $pa); b0=$(ns $pb); sleep "$S"; a1=$(ns $pa); b1=$(ns $pb)
	ea=$(pct "$a0" "$a1"); eb=$(pct "$b0" "$b1")
	echo "window $w: A $ea%  B $eb%"; ra+=("$ea"); rb+=("$eb")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "median A $(med "${ra[@]}")%  B $(med "${rb[@]}")%  (N=$N, PROXY_FLAGS=${PROXY_FLAGS:-})"

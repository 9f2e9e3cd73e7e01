#!/usr/bin/env bash
# Run bench/suite.py stages on a lent GPU machine across several device calls.
#
#   bash bench/lease.sh SECONDS [suite.py arguments...]    e.g.  bash bench/lease.sh 580 check engine fold
#
# The first call starts the suite in its own process session (setsid), so a stage keeps running when one device
# call ends (a call is limited to 10 minutes; the machine stays warm for a short while after it). Every call then
# waits up to SECONDS for the suite to finish and copies what it has so far to $OUT: suite.out (the per-command
# "[stage] rc= seconds" lines), bench.jsonl (one record per bench/grid.py run) and logs.tgz (every stage's log).
# A later call on the same warm machine does not restart anything: it only waits and copies again. If the machine
# was given back in between, the call starts the stages it is given afresh.
set -u
W=/tmp/suite
OUT=${OUT:?set OUT to the folder that comes back}
wait_s=$1
shift
mkdir -p "$W"
if [ ! -e "$W/started" ]; then
  date -u +%FT%TZ > "$W/started"
  PYTHONUNBUFFERED=1 setsid bash -c 'python3 bench/suite.py --out "$0" "$@" > "$0/suite.out" 2>&1; echo "suite rc=$?" >> "$0/suite.out"; touch "$0/finished"' "$W" "$@" < /dev/null > /dev/null 2>&1 &
  echo "started the suite: $*"
else
  echo "the suite has been running since $(cat "$W/started"); waiting"
fi
end=$((SECONDS + wait_s))
while [ "$SECONDS" -lt "$end" ] && [ ! -e "$W/finished" ]; do sleep 2; done
cp "$W/suite.out" "$OUT/" 2>/dev/null
cp "$W/bench.jsonl" "$OUT/" 2>/dev/null
tar -C "$W" -czf "$OUT/logs.tgz" --exclude=bench.jsonl --exclude=suite.out . 2>/dev/null
[ -e "$W/finished" ] && echo "suite finished" || echo "suite still running after ${wait_s}s"
cat "$W/suite.out"

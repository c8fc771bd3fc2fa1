#!/usr/bin/env bash
# The clicker load test on a lossy, reordering loopback: 5% of UDP packets dropped (nftables,
# in a private network namespace), 10% held back 1-20 ms by a user-space relay.
# Needs root (or unprivileged user namespaces) and the nft command (Debian: nftables).
# Usage: bash scripts/load/lossy.sh [--users N] [--clicks N] [--loss PERCENT]
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS=200
CLICKS=50
LOSS=5
REORDER=0.1
while [ $# -gt 0 ]; do
    case "$1" in
        --users) USERS="$2"; shift 2 ;;
        --clicks) CLICKS="$2"; shift 2 ;;
        --loss) LOSS="$2"; shift 2 ;;
        --reorder) REORDER="$2"; shift 2 ;;
        *) echo "lossy.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
PYTHON="${PYTHON:-.venv/bin/python}"

exec unshare --net sh -c "
    set -e
    ip link set lo up
    nft add table inet lossy
    nft add chain inet lossy input '{ type filter hook input priority 0; }'
    nft add rule inet lossy input meta l4proto udp numgen random mod 100 '<' $LOSS counter drop
    status=0
    $PYTHON scripts/load/load.py --users $USERS --clicks $CLICKS --concurrency $USERS \
        --reorder $REORDER || status=\$?
    nft list chain inet lossy input | grep counter
    exit \$status
"

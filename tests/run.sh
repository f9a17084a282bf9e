#!/usr/bin/env bash
# Install what the test suite needs, then run it: `bash tests/run.sh [pytest args]`.
#  - Debian tools the tests use as independent decoders, collectors and peers (needs root or sudo;
#    skipped when they are already there): tshark, nfdump (nfcapd), pmacct (nfacctd), softflowd, tcpreplay; and
#    systemd-analyze (systemd) and strace, which check the systemd unit; ExaBGP (flowd's BGP speaker)
#    and BIRD (the test's second BGP speaker).
#  - flowd itself with its test extras, in ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in tshark:tshark nfcapd:nfdump nfacctd:pmacct softflowd:softflowd tcpreplay:tcpreplay ip:iproute2 \
        systemd-analyze:systemd strace:strace promtool:prometheus; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
echo "mypy --strict (flowd, shell)"
.venv/bin/python -m mypy --no-error-summary
exec .venv/bin/python -m pytest "$@"

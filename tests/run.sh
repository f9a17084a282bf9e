#!/usr/bin/env bash
# Install what the test suite needs, then run it: `bash tests/run.sh [pytest args]`.
#  - Debian tools the tests use as independent decoders, collectors and peers (needs root or sudo;
#    skipped when they are already there): tshark, nfdump (nfcapd), pmacct (nfacctd), softflowd, tcpreplay; and
#    systemd-analyze (systemd) and strace, which check the systemd unit; ExaBGP (flowd's BGP speaker)
#    and BIRD (the test's second BGP speaker).
#  - gcc and the Python headers, so the compiled extensions build.
#  - flowd itself with its test extras, in ./.venv.
# The suite then runs twice: compiled path, then FLOWD_NO_FASTPATH=1 (pure path).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in tshark:tshark nfcapd:nfdump nfacctd:pmacct softflowd:softflowd tcpreplay:tcpreplay ip:iproute2 \
        systemd-analyze:systemd strace:strace promtool:prometheus bird:bird2 exabgp:exabgp; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
# the compiled extensions (flowd/native/*.c) need a C compiler and the headers of the Python that builds them
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
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
# Twice: with the compiled extensions, then the pure numpy path they replace, which stays the reference
# and must pass the same tests. CI=true: this command installed the compiler, so an extension that did
# not build is a failing test, not a skipped one.
export CI=true
status=0
.venv/bin/python -m pytest "$@" || status=$?
echo "--- the same tests with FLOWD_NO_FASTPATH=1 (the pure Python/numpy path)"
FLOWD_NO_FASTPATH=1 .venv/bin/python -m pytest "$@" || status=$?
exit "$status"

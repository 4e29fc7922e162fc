#!/bin/sh
#   Install what shmipc needs to build and test, from Debian's packages,
#   when it is missing. Extra packages can be named as arguments.
#   python3-zmq and cppzmq-dev are for the launcher's tests (tests/swap):
#   unchanged Python and C++ programs on the system libzmq.
set -eu
need="build-essential cmake pkg-config libczmq-dev libzmq3-dev libcmocka-dev python3-zmq cppzmq-dev $*"
missing=""
for package in $need; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
echo "setup: installing$missing"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null

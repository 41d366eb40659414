#!/bin/sh
# Installs the headless browser the dashboard test drives: Debian's chromium.
# Idempotent; `make browser` (and so `make test`) calls it. Needs root or sudo.
set -eu
if command -v chromium >/dev/null 2>&1; then
	echo "chromium: $(chromium --version 2>/dev/null || echo installed)"
	exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
chromium --version

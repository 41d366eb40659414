#!/usr/bin/env bash
# Installs what `make bench-edge` compares the edge with: wrk (load
# generator) and nginx-light (empty_gif), from Debian. Idempotent: does
# nothing when both are present.
set -euo pipefail
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${need[*]} from Debian"
$sudo apt-get update -qq
# The package's own nginx service is not used: the benchmark runs nginx as
# its own process with a generated config.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"

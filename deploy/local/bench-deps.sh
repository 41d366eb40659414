#!/usr/bin/env bash
# Installs the load generators and reference servers of the benchmarks:
#   - wrk (closed-loop HTTP load) and nginx-light (empty_gif, `make bench-edge`)
#     from Debian;
#   - with the argument "vegeta": vegeta (open-loop HTTP load at a constant
#     rate, `make bench-e2e -mode=rate`) from the Go module proxy into
#     <repo>/.cache/bin/vegeta.
# Idempotent: does nothing for what is already present. `make test` runs it
# too, for wrk (internal/bench/e2ebench's short test).
set -euo pipefail

readonly VEGETA_VERSION=v12.13.0

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)
BIN_DIR=$REPO_ROOT/.cache/bin

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing ${need[*]} from Debian"
	$sudo apt-get update -qq
	# The package's own nginx service is not used: the benchmark runs nginx as
	# its own process with a generated config.
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

[ "${1:-}" = vegeta ] || exit 0

# vegeta, pinned; reinstalled only when missing or of another version (read
# from the binary's build information: `go install` leaves -version empty).
if ! go version -m "$BIN_DIR/vegeta" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/tsenart/vegeta/v12[[:space:]]+$VEGETA_VERSION[[:space:]]"; then
	echo "installing vegeta $VEGETA_VERSION into $BIN_DIR"
	mkdir -p "$BIN_DIR"
	GOBIN=$BIN_DIR go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
fi

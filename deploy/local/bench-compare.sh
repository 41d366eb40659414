#!/usr/bin/env bash
# bench-compare.sh REV: the hot-path benchmarks of this tree against those of
# the commit REV, in the same run. The test binaries of both trees are built
# first, then run alternately (old, new, old, new, ...) COUNT times each, so
# a busy moment of the machine falls on both; benchstat prints old against
# new. Raw results: build/bench-compare/{old,new}.txt.
#
# Packages and benchmarks (PKGS_BENCH, "package=regexp[=benchtime]" words)
# default to
# the hot paths: raw-hit encoding, visitor keys, the edge handler, the spool
# append, the processor's enrichment (Transform, against the real Redis at
# PIXEL_TEST_REDIS) and the aggregator's applying and flushing of events
# (against a Redis server of its own).
set -euo pipefail

rev=${1:?usage: bench-compare.sh REV}
count=${COUNT:-6}
root=$(git rev-parse --show-toplevel)
out=$root/build/bench-compare
default_pkgs="./schemas/=AppendRawHit$ ./internal/visitor/=Key ./edge/=PixelHandler|BareGIFHandler|FromQuery$ ./edge/spool/=Append ./processor/=Transform ./aggregator/=AggregatorVsNaive/aggregator=500x"
pkgs=${PKGS_BENCH:-$default_pkgs}

base=$(mktemp -d /tmp/pixelpipe-base.XXXXXX)
cleanup() {
	git -C "$root" worktree remove --force "$base" >/dev/null 2>&1 || rm -rf "$base"
}
trap cleanup EXIT
git -C "$root" worktree add --detach "$base" "$rev" >/dev/null
rm -rf "$out"
mkdir -p "$out/bin"

# build TREE NAME: one test binary per package, with the integration tag (the
# processor's and aggregator's benchmarks need it).
build() {
	local tree=$1 name=$2 spec pkg
	for spec in $pkgs; do
		pkg=${spec%%=*}
		(cd "$tree" && go test -tags integration -c -o "$out/bin/$name-$(echo "$pkg" | tr -c 'a-z0-9\n' _).test" "$pkg")
	done
}
build "$base" old
build "$root" new

for i in $(seq "$count"); do
	for name in old new; do
		for spec in $pkgs; do
			pkg=${spec%%=*}
			bin=$out/bin/$name-$(echo "$pkg" | tr -c 'a-z0-9\n' _).test
			# Run from the package folder of this tree, as go test does.
			dir=$root/${pkg#./}
			[ "$name" = old ] && dir=$base/${pkg#./}
			IFS== read -r _ regexp benchtime <<<"$spec"
			(cd "$dir" && "$bin" -test.run '^$' -test.bench "$regexp" -test.benchtime "${benchtime:-1s}" -test.benchmem -test.count 1) |
				grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >>"$out/$name.txt"
		done
	done
	echo "round $i of $count done" >&2
done
cd "$out" && go tool benchstat old.txt new.txt

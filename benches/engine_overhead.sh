#!/bin/sh
# Engine overhead: 1,000 trivial `exec` steps (`/bin/true`) in a chain, run by rb, against
# the same 1,000 commands run by a shell script. Prints the per-step overhead of rb in ms
# (median of RUNS runs each). Uses the release build.
#
#   benches/engine_overhead.sh            # builds target/release/rb first
#   RB=path/to/rb N=1000 RUNS=3 benches/engine_overhead.sh
set -eu

N=${N:-1000}
RUNS=${RUNS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${RB:-}" ]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml"
    RB=$root/target/release/rb
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{
    printf 'version: 1\nname: overhead\nsteps:\n'
    i=1
    while [ "$i" -le "$N" ]; do
        printf '  - { id: s%d, type: exec, command: [/bin/true] }\n' "$i"
        i=$((i + 1))
    done
} >"$work/chain.yaml"
{
    printf '#!/bin/sh\nset -e\n'
    i=1
    while [ "$i" -le "$N" ]; do
        printf '/bin/true\n'
        i=$((i + 1))
    done
} >"$work/chain.sh"

# Wall time of a command in seconds (nanosecond clock).
elapsed() {
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

rb_times=""
sh_times=""
r=1
while [ "$r" -le "$RUNS" ]; do
    rm -rf "$work/state"
    rb_times="$rb_times $(elapsed "$RB" run "$work/chain.yaml" --state-dir "$work/state" --quiet)"
    sh_times="$sh_times $(elapsed sh "$work/chain.sh")"
    r=$((r + 1))
done
rb_med=$(printf '%s\n' $rb_times | median)
sh_med=$(printf '%s\n' $sh_times | median)
per_step=$(echo "($rb_med - $sh_med) * 1000 / $N" | bc -l)

printf 'steps:            %d (chain of exec /bin/true)\n' "$N"
printf 'rb runs (s):     %s\n' "$rb_times"
printf 'shell runs (s):  %s\n' "$sh_times"
printf 'rb median:        %.3f s\n' "$rb_med"
printf 'shell median:     %.3f s\n' "$sh_med"
printf 'overhead:         %.3f ms/step\n' "$per_step"

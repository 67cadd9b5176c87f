# Sourced by the .ci scripts. `step NAME COMMAND [ARG...]` runs an external command (a script
# or a program, never a shell function: errexit does not apply inside a function run as part
# of `||`) and appends its wall time to $Q2L_CI_TIMES, the table that .ci/run prints.
step() {
    local name=$1 start=$SECONDS rc=0
    shift
    "$@" || rc=$?
    if [ -n "${Q2L_CI_TIMES:-}" ]; then
        local result=ok
        [ "$rc" -eq 0 ] || result="failed ($rc)"
        printf '%s\t%s\t%s\n' "$name" "$((SECONDS - start))" "$result" >>"$Q2L_CI_TIMES"
    fi
    return "$rc"
}

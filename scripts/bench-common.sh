# Sourced by the bench-* scripts: reading `/usr/bin/time -v` output and
# summing up runs, written once.

# time_value FILE LABEL: the value of LABEL's line in a `time -v -o FILE`
# report, e.g. time_value t "User time (seconds)".
time_value() {
    awk -F': ' -v label="$2" 'index($1, label) {print $2}' "$1"
}

# time_wall_seconds FILE: the report's "Elapsed (wall clock)" in seconds.
time_wall_seconds() {
    time_value "$1" "Elapsed (wall clock)" | awk '{n = split($1, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}'
}

# A jq definition: stats(f) is the median, min and max of f over an array.
BENCH_JQ_STATS='def stats(f): (map(f) | sort) as $v
    | {median: (if ($v|length) % 2 == 1 then $v[($v|length)/2|floor]
                else ($v[($v|length)/2 - 1] + $v[($v|length)/2]) / 2 end),
       min: $v[0], max: $v[-1]};'

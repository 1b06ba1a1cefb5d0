module github.com/invocation-history/bench/loadgen

go 1.25

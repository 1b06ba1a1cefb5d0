module github.com/invocation-history/bench/noopfunction

go 1.25

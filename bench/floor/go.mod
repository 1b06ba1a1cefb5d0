module github.com/invocation-history/bench/floor

go 1.25

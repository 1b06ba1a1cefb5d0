module github.com/invocation-history/extension

go 1.25

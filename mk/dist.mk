# The construct library (issue 14): invocation-history-cdk/, its own package, with the layer zips inside its wheel.
.PHONY: lint-construct

# `make lint` covers the package too.
lint: lint-construct
lint-construct: venv
	$(PY) -m ruff check invocation-history-cdk

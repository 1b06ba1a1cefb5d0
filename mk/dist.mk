# The construct library (issue 14): invocation-history-cdk/, its own package. `make dist` builds its wheel with the
# prebuilt, reproducible layer zips of `make layer` inside (hatch_build.py), so installing it and synthesizing an app
# with it need no Rust, Go or Docker. The wheel is reproducible too (hatchling: fixed file times and order).
CONSTRUCT_DIR := invocation-history-cdk
CONSTRUCT_SOURCES := $(shell find $(CONSTRUCT_DIR)/src -name '*.py' -o -name '*.sql' -o -name '*.json') $(CONSTRUCT_DIR)/pyproject.toml \
	$(CONSTRUCT_DIR)/hatch_build.py $(CONSTRUCT_DIR)/README.md

.PHONY: dist lint-construct

dist: dist/.wheel ## the construct's wheel, with both layer zips inside, in dist/ (pip install dist/invocation_history_cdk-*.whl)

dist/.wheel: $(foreach a,$(ARCHES),dist/invocation-history-extension-$(a).zip) $(CONSTRUCT_SOURCES) | venv
	rm -f dist/invocation_history_cdk-*.whl
	INVOCATION_HISTORY_CDK_LAYERS=$(CURDIR)/dist $(PY) -m pip wheel --quiet --no-deps --wheel-dir dist ./$(CONSTRUCT_DIR)
	touch $@

# `make lint` covers the package too.
lint: lint-construct
lint-construct: venv
	$(PY) -m ruff check $(CONSTRUCT_DIR)

# tests/package builds the wheel from the layer zips; the workshop's module 7 installs the wheel (its shell is offline).
test-py: layer dist

# The lower bound of the package's aws-cdk-lib range (invocation-history-cdk/pyproject.toml), checked: the wheel in a
# fresh venv with exactly that aws-cdk-lib (from PyPI), synthesizing the example app (examples/my-app), installed by
# its requirements.txt, with no Rust, Go or Docker on the PATH.
CDK_MIN_VERSION := 2.100.0
CDK_MIN_VENV := build/cdk-min

.PHONY: dist-check-min
dist-check-min: dist ## synthesize the example app with the wheel on the oldest aws-cdk-lib it allows (CDK_MIN_VERSION)
	rm -rf $(CDK_MIN_VENV) && $(PYTHON_BOOTSTRAP) -m venv $(CDK_MIN_VENV)
	cp -R examples/my-app $(CDK_MIN_VENV)/app && rm -rf $(CDK_MIN_VENV)/app/cdk.out $(CDK_MIN_VENV)/app/.venv
	$(CDK_MIN_VENV)/bin/python -m pip install --quiet aws-cdk-lib==$(CDK_MIN_VERSION) --find-links dist \
		-r $(CDK_MIN_VENV)/app/requirements.txt
	cd $(CDK_MIN_VENV)/app && CDK_OUTDIR=cdk.out PATH=$(CURDIR)/$(CDK_MIN_VENV)/bin:/usr/bin:/bin python3 app.py
	$(CDK_MIN_VENV)/bin/python -m pip list 2>/dev/null | grep -E '^(aws-cdk-lib|constructs|jsii|invocation-history-cdk) '

# The example app is Python too: `make lint` covers it.
lint: lint-examples
.PHONY: lint-examples
lint-examples: venv
	$(PY) -m ruff check examples

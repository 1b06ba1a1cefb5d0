# The CDK app (issue 3): synth, deploy and destroy with the CDK CLI pinned in package.json / package-lock.json.
CDK := node_modules/.bin/cdk
CDK_OUTPUTS ?= cdk-outputs.json
# Extra flags for `make deploy`, e.g. CDK_DEPLOY_ARGS='--require-approval never'
# or CDK_DEPLOY_ARGS='-c invocationHistory:layerShareWith=111122223333,o-abcdef1234' (docs/deploy.md)
CDK_DEPLOY_ARGS ?=
# Offline and quiet: no notices fetched, no CLI telemetry sent.
CDK_FLAGS := --no-notices
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: synth deploy destroy test-cdk

$(CDK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: venv $(CDK) ## cdk synth of the whole app into cdk.out (pinned CLI; offline; no Docker engine needed)
	$(CDK) synth $(CDK_FLAGS) --quiet

deploy: venv $(CDK) ## deploy the layer, demo and container stacks to your AWS account; outputs in cdk-outputs.json
	$(CDK) deploy $(CDK_FLAGS) --all --outputs-file $(CDK_OUTPUTS) $(CDK_DEPLOY_ARGS)

destroy: venv $(CDK) ## delete the stacks that `make deploy` created
	$(CDK) destroy $(CDK_FLAGS) --all --force

test-cdk: venv ## the CDK tests only: snapshots, assertions, cdk-nag, cfn-lint, hadolint (tests/unit)
	$(PY) -m pytest tests/unit -q

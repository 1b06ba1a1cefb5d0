# The CDK app (issue 3): synth, deploy and destroy with the CDK CLI pinned in package.json / package-lock.json.
CDK := node_modules/.bin/cdk
CDK_OUTPUTS ?= cdk-outputs.json
# Extra flags for `make deploy`, e.g. CDK_DEPLOY_ARGS='--require-approval never'
# or CDK_DEPLOY_ARGS='-c invocationHistory:layerShareWith=111122223333,o-abcdef1234' (docs/deploy.md)
CDK_DEPLOY_ARGS ?=
# Offline and quiet: no notices fetched, no CLI telemetry sent.
CDK_FLAGS := --no-notices
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: synth deploy destroy test-cdk up qemu-user node-ric

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

# `make up` (issue 15): the synthesized app's functions, locally, behind one Lambda Invoke API endpoint (tools/local_cloud.py).
# LOCAL_CLOUD_ARGS e.g. '--port 3001'; the outputs file (cdk deploy --outputs-file shape) is cdk-local-outputs.json.
LOCAL_CLOUD_ARGS ?=
QEMU_AARCH64 := .local/bin/qemu-aarch64-static

up: venv rie $(if $(filter x86_64,$(HOST_ARCH)),qemu-user) ## synthesize the app and run its functions locally, as deployed (Ctrl-C stops them)
	$(PY) -m tools.local_cloud --synth $(LOCAL_CLOUD_ARGS)

qemu-user: ## qemu-aarch64-static into .local/bin, so an x86_64 machine runs the arm64 functions under `make up`
	@if [ -x $(QEMU_AARCH64) ] || command -v qemu-aarch64-static >/dev/null; then :; \
	elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then \
		dir=$$(mktemp -d); (cd $$dir && apt-get download -q qemu-user-static 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2; \
			dpkg-deb --fsys-tarfile qemu-user-static_*.deb | tar -x ./usr/bin/qemu-aarch64-static) \
		&& mkdir -p .local/bin && mv $$dir/usr/bin/qemu-aarch64-static $(QEMU_AARCH64) \
		|| echo "could not get qemu-user-static from apt: the arm64 functions are reported skipped by make up"; rm -rf $$dir; \
	else echo "no apt-get: install qemu-user-static to run the arm64 functions locally (make up reports them skipped)"; fi

NODE_RIC := .local/node-ric/node_modules/.bin/aws-lambda-ric
node-ric: $(NODE_RIC) ## the Node.js runtime interface client (npm aws-lambda-ric; a native build) for Node.js functions under `make up`
$(NODE_RIC):
	npm install --prefix .local/node-ric --no-audit --no-fund --loglevel=error aws-lambda-ric@4.0.2

# The integration tests start the app locally when nothing is deployed (tests/integration/conftest.py): on an x86_64
# machine the arm64 Go sample needs qemu-user there too.
test-py: $(if $(filter x86_64,$(HOST_ARCH)),qemu-user)

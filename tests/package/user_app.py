"""A user's CDK app, as the package's README shows it: run with `python user_app.py` in an empty directory, it
synthesizes into ./cdk.out and prints where the package was imported from. tests/package runs it with the wheel
installed in a fresh venv; `make dist-check-min` runs it on the oldest aws-cdk-lib the package supports.

- UserApp: a Python function on x86_64 and a Node.js function on arm64, the extension on both in one call, and the
  dashboard of their execution environments;
- Exported: every function of the stack through the Aspect, its history exported to a bucket, the Runtime API proxy on.
"""

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

import invocation_history_cdk
from invocation_history_cdk import (
    ExtensionSettings,
    InvocationHistoryAspect,
    InvocationHistoryDashboard,
    add_invocation_history,
)

ENV = cdk.Environment(account="123456789012", region="eu-west-1")

app = cdk.App(outdir="cdk.out")
stack = cdk.Stack(app, "UserApp", env=ENV)
python_fn = lambda_.Function(
    stack, "Api", runtime=lambda_.Runtime.PYTHON_3_11, handler="index.handler",
    code=lambda_.Code.from_inline("def handler(event, context): return {}"), architecture=lambda_.Architecture.X86_64,
)
node_fn = lambda_.Function(
    stack, "Edge", runtime=lambda_.Runtime.NODEJS_18_X, handler="index.handler",
    code=lambda_.Code.from_inline("exports.handler = async () => ({})"), architecture=lambda_.Architecture.ARM_64,
)
add_invocation_history([python_fn, node_fn], ExtensionSettings(max_records=1000))
InvocationHistoryDashboard(stack, "Environments", functions={"Api": python_fn, "Edge": node_fn})

exported = cdk.Stack(app, "Exported", env=ENV)
bucket = s3.Bucket(exported, "Exports")
lambda_.Function(
    exported, "Worker", runtime=lambda_.Runtime.PYTHON_3_11, handler="index.handler",
    code=lambda_.Code.from_inline("def handler(event, context): return {}"),
)
cdk.Aspects.of(exported).add(InvocationHistoryAspect(ExtensionSettings(export_bucket=bucket, runtime_proxy=True)))

app.synth()
print(invocation_history_cdk.__file__)

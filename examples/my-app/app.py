"""A CDK app that uses Invocation History, as a user's app would: a Python function on x86_64 and a Node.js function
on arm64, the extension on both in one call (each gets the layer of its own architecture), their history exported to
a bucket, and a dashboard of their execution environments. `cdk synth` runs it (cdk.json); so does `python app.py`
with CDK_OUTDIR set, which is how tests/package runs it from a fresh virtual environment with the wheel installed."""

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from invocation_history_cdk import ExtensionSettings, InvocationHistoryDashboard, add_invocation_history

# Runtimes by name work on every aws-cdk-lib the package supports (from 2.100.0, older than the constants
# Runtime.PYTHON_3_13 and Runtime.NODEJS_22_X): on a newer aws-cdk-lib, use the constants.
PYTHON = lambda_.Runtime("python3.13", lambda_.RuntimeFamily.PYTHON)
NODE = lambda_.Runtime("nodejs22.x", lambda_.RuntimeFamily.NODEJS)


class MyAppStack(cdk.Stack):
    def __init__(self, scope, construct_id, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        api = lambda_.Function(
            self,
            "Api",
            runtime=PYTHON,
            architecture=lambda_.Architecture.X86_64,
            handler="index.handler",
            code=lambda_.Code.from_asset("functions/python"),
        )
        worker = lambda_.Function(
            self,
            "Worker",
            runtime=NODE,
            architecture=lambda_.Architecture.ARM_64,
            handler="index.handler",
            code=lambda_.Code.from_asset("functions/node"),
        )
        history = s3.Bucket(
            self,
            "History",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(30))],
        )
        # The one call: each function gets its stack's layer for its own architecture (one layer per architecture),
        # the extension's variables, and s3:PutObject on the bucket's invocation-history/ prefix.
        add_invocation_history([api, worker], ExtensionSettings(max_records=1000, export_bucket=history))
        InvocationHistoryDashboard(self, "Environments", functions={"Api": api, "Worker": worker})


app = cdk.App()
MyAppStack(app, "MyApp")
app.synth()

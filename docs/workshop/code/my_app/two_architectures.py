"""Workshop module 7's exercise: the same function on x86_64, plus one on arm64, both given the extension in one call.
Synthesizes into ./cdk.out.two-architectures, beside the app's own cdk.out."""

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from invocation_history_cdk import ExtensionSettings, add_invocation_history

app = cdk.App(outdir="cdk.out.two-architectures")
stack = cdk.Stack(app, "MyApp")

ask = lambda_.Function(
    stack,
    "Ask",
    runtime=lambda_.Runtime.PYTHON_3_13,
    handler="ask_for_me.handler",
    code=lambda_.Code.from_asset("function"),
)
ask_on_arm = lambda_.Function(
    stack,
    "AskOnArm",
    runtime=lambda_.Runtime.PYTHON_3_13,
    architecture=lambda_.Architecture.ARM_64,
    handler="ask_for_me.handler",
    code=lambda_.Code.from_asset("function"),
)
add_invocation_history([ask, ask_on_arm], ExtensionSettings(max_records=100))

app.synth()

"""Your own CDK app (workshop module 7): one Python function (function/ask_for_me.py) given Invocation History by the
installable construct. `python app.py` synthesizes it into ./cdk.out, as `cdk synth` would."""

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from invocation_history_cdk import ExtensionSettings, add_invocation_history

app = cdk.App(outdir="cdk.out")
stack = cdk.Stack(app, "MyApp")

ask = lambda_.Function(
    stack,
    "Ask",
    runtime=lambda_.Runtime.PYTHON_3_13,
    handler="ask_for_me.handler",
    code=lambda_.Code.from_asset("function"),
)
add_invocation_history(ask, ExtensionSettings(max_records=100))

cdk.CfnOutput(stack, "AskFunctionName", value=ask.function_name)
app.synth()

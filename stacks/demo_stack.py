"""The sample functions (Go on arm64, Python on x86_64, and the Python sample again through the Runtime API proxy),
each with the matching extension layer, and a dashboard of their execution environments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment, Annotations, AssetHashType, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_go_alpha as lambda_go
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.history_dashboard import InvocationHistoryDashboard
from stacks.invocation_history_layer import InvocationHistoryLayer

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Short: the samples' logs are only for looking at a demo run.
LOG_RETENTION = logs.RetentionDays.ONE_WEEK
#: The flags of `make build` and build-layer.sh: the same source gives the same bootstrap on every machine.
GO_BUILD_FLAGS = ["-trimpath", '-ldflags="-s -w -buildid="']


def function_role_and_logs(scope: Construct, id: str) -> tuple[iam.Role, logs.LogGroup]:
    """A role that may only write to the function's own log group, and that log group (short retention).

    Least privilege instead of AWSLambdaBasicExecutionRole, which allows writing to every log group.
    """
    log_group = logs.LogGroup(
        scope, f"{id}Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
    )
    role = iam.Role(
        scope,
        f"{id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{id}: writes its own logs, nothing else",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    return role, log_group


PYTHON_RUNTIME_ACKNOWLEDGMENT = Acknowledgment(
    id="AwsSolutions-L1",
    reason="python3.13 is the sample's chosen runtime (issue 3; the local Lambda runs it too); the "
    "extension works with every runtime, so moving to a newer one is a one-line change",
)


class DemoStack(Stack):
    """The sample functions with the extension, and their dashboard; nothing publicly invocable (no URL, no resource
    policy)."""

    def __init__(self, scope: Construct, id: str, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        # The demo publishes its own layers rather than importing the layer stack's: a cross-stack export of a
        # layer version ARN cannot change while imported, so every extension change would block the deploy.
        # Old versions are deleted with the stack; functions that still use one keep working.
        arm64_layer = InvocationHistoryLayer(
            self, "ExtensionArm64", architecture=lambda_.Architecture.ARM_64, removal_policy=RemovalPolicy.DESTROY
        )
        x86_64_layer = InvocationHistoryLayer(
            self, "ExtensionX8664", architecture=lambda_.Architecture.X86_64, removal_policy=RemovalPolicy.DESTROY
        )

        go_role, go_logs = function_role_and_logs(self, "GoSample")
        Annotations.of(self).acknowledge_warning(
            "@aws-cdk/aws-lambda-go-alpha:goBuildFlagsSecurityWarning",
            "the flags are the constant GO_BUILD_FLAGS of this module, not user input",
        )
        self.go_function = lambda_go.GoFunction(
            self,
            "GoSample",
            entry=str(REPO_ROOT / "functions" / "go"),
            runtime=lambda_.Runtime.PROVIDED_AL2023,
            architecture=lambda_.Architecture.ARM_64,
            memory_size=128,
            timeout=Duration.seconds(10),
            role=go_role,
            log_group=go_logs,
            description="Invocation History sample (Go, arm64)",
            bundling=lambda_go.BundlingOptions(
                go_build_flags=GO_BUILD_FLAGS,
                cgo_enabled=False,
                environment={"GOFLAGS": "-buildvcs=false"},
                # Named by the source, not the binary: the template is the same on every machine.
                asset_hash_type=AssetHashType.SOURCE,
            ),
        )
        arm64_layer.add_function(self.go_function)

        self.python_function = self._python_sample("PythonSample", "Invocation History sample (Python, x86_64)")
        x86_64_layer.add_function(self.python_function)

        # The same Python sample through the Runtime API proxy. On Lambda, unlike on the RIE, the managed runtime
        # applies AWS_LAMBDA_EXEC_WRAPPER: this function is where the wrapper path is exercised for real.
        self.python_proxy_function = self._python_sample(
            "PythonProxySample", "Invocation History sample (Python, x86_64) through the Runtime API proxy"
        )
        x86_64_layer.add_function(self.python_proxy_function, runtime_proxy=True)

        self.dashboard = InvocationHistoryDashboard(
            self,
            "Environments",
            functions={
                "GoSample": self.go_function,
                "PythonSample": self.python_function,
                "PythonProxySample": self.python_proxy_function,
            },
            dashboard_name=f"{self.stack_name}-Environments",
        )

        CfnOutput(self, "GoSampleFunctionName", value=self.go_function.function_name,
                  description="Go sample (provided.al2023, arm64) with the extension layer")
        CfnOutput(self, "PythonSampleFunctionName", value=self.python_function.function_name,
                  description="Python sample (python3.13, x86_64) with the extension layer")
        CfnOutput(self, "PythonProxySampleFunctionName", value=self.python_proxy_function.function_name,
                  description="Python sample (python3.13, x86_64) with the extension layer and the Runtime API proxy")
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard.dashboard_name,
                  description="CloudWatch dashboard of the samples' execution environments")

    def _python_sample(self, id: str, description: str) -> lambda_.Function:
        role, log_group = function_role_and_logs(self, id)
        fn = lambda_.Function(
            self,
            id,
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(REPO_ROOT / "functions" / "python"), exclude=["__pycache__", "*.pyc"]
            ),
            architecture=lambda_.Architecture.X86_64,
            memory_size=128,
            timeout=Duration.seconds(10),
            role=role,
            log_group=log_group,
            description=description,
        )
        Validations.of(fn).acknowledge(PYTHON_RUNTIME_ACKNOWLEDGMENT)
        return fn


"""The sample functions (Go on arm64, Python on x86_64, and the Python sample again through the Runtime API proxy),
each with the matching extension layer and its history exported to an S3 bucket of the stack, a dashboard of their
execution environments, and the export as an Athena table with named queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from aws_cdk import Acknowledgment, Annotations, AssetHashType, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_go_alpha as lambda_go
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from invocation_history_cdk import (
    ExtensionSettings,
    InvocationHistoryDashboard,
    InvocationHistoryLayer,
    InvocationHistoryTable,
)
from invocation_history_cdk.settings import DEFAULT_EXPORT_PREFIX

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Short: the samples' logs are only for looking at a demo run.
LOG_RETENTION = logs.RetentionDays.ONE_WEEK
#: The flags of `make build` and build-layer.sh: the same source gives the same bootstrap on every machine.
GO_BUILD_FLAGS = ["-trimpath", '-ldflags="-s -w -buildid="']
#: cdk.json / `-c` context key: days after which the demo's exported objects are deleted.
EXPORT_EXPIRE_DAYS_CONTEXT_KEY = "invocationHistory:exportExpireDays"
DEFAULT_EXPORT_EXPIRE_DAYS = 30
#: What the demo's function roles may do besides writing their logs (their role descriptions say so).
EXPORTS_TOO = f" and puts its exported history under {DEFAULT_EXPORT_PREFIX} of the export bucket"


def parse_expire_days(value: Union[None, int, str]) -> int:
    """The ``invocationHistory:exportExpireDays`` context value: a number in cdk.json, text with `-c`."""
    if value is None or value == "":
        return DEFAULT_EXPORT_EXPIRE_DAYS
    days = value
    if isinstance(value, str) and value.strip().isdigit():
        days = int(value.strip())
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 36_500:
        raise ValueError(
            f"context {EXPORT_EXPIRE_DAYS_CONTEXT_KEY} is {value!r}: pass a whole number of days from 1 to 36500, "
            f"or leave it out for {DEFAULT_EXPORT_EXPIRE_DAYS}"
        )
    return days


def function_role_and_logs(scope: Construct, id: str, *, also: str = "") -> tuple[iam.Role, logs.LogGroup]:
    """A role that may only write to the function's own log group, and that log group (short retention).

    Least privilege instead of AWSLambdaBasicExecutionRole, which allows writing to every log group.

    :param also: what else the role will be allowed, for its description (e.g. " and exports its history").
    """
    log_group = logs.LogGroup(
        scope, f"{id}Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
    )
    role = iam.Role(
        scope,
        f"{id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{id}: writes its own logs{also}, nothing else",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    return role, log_group


EXPORT_ACCESS_LOGS_ACKNOWLEDGMENT = Acknowledgment(
    id="AwsSolutions-S1",
    reason="the export bucket is written only by the demo's three function roles (PutObject on one prefix) and read "
    "by whoever deploys the demo; an access-log bucket would need the same exception itself, and CloudTrail data "
    "events can be turned on where an audit trail of the objects is wanted",
)

PYTHON_RUNTIME_ACKNOWLEDGMENT = Acknowledgment(
    id="AwsSolutions-L1",
    reason="python3.13 is the sample's chosen runtime (issue 3; the local Lambda runs it too); the "
    "extension works with every runtime, so moving to a newer one is a one-line change",
)


def export_bucket(scope: Construct, id: str, *, expire_days: int) -> s3.Bucket:
    """The bucket the samples export their history to: private, TLS only, encrypted, emptied by age.

    S3-managed keys (SSE-S3) rather than a KMS key: the objects are a demo's diagnostics, SSE-S3 costs nothing per
    request (SSE-KMS costs a KMS call per object written unless bucket keys are on, and a customer key $1 a month) and
    needs no key grant. Retained when the stack is deleted: ``cdk destroy`` does not delete exported data, and emptying
    the bucket on delete would take a custom-resource Lambda with a managed policy; the lifecycle rule empties it
    within ``expire_days`` anyway (docs/deploy.md, "Clean up").
    """
    bucket = s3.Bucket(
        scope,
        id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,  # no ACLs: the extension sends none
        lifecycle_rules=[s3.LifecycleRule(id="ExpireExports", expiration=Duration.days(expire_days))],
        removal_policy=RemovalPolicy.RETAIN,
    )
    Validations.of(bucket).acknowledge(EXPORT_ACCESS_LOGS_ACKNOWLEDGMENT)
    return bucket


class DemoStack(Stack):
    """The sample functions with the extension, their export bucket and their dashboard; nothing publicly invocable
    (no URL, no resource policy).

    :param export_expire_days: days after which exported objects are deleted. Default: 30.
    """

    def __init__(
        self, scope: Construct, id: str, *, export_expire_days: int = DEFAULT_EXPORT_EXPIRE_DAYS, **kwargs: Any
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.export_bucket = export_bucket(self, "ExportBucket", expire_days=export_expire_days)
        # The demo publishes its own layers rather than importing the layer stack's: a cross-stack export of a
        # layer version ARN cannot change while imported, so every extension change would block the deploy.
        # Old versions are deleted with the stack; functions that still use one keep working.
        arm64_layer = InvocationHistoryLayer(
            self, "ExtensionArm64", architecture=lambda_.Architecture.ARM_64, removal_policy=RemovalPolicy.DESTROY
        )
        x86_64_layer = InvocationHistoryLayer(
            self, "ExtensionX8664", architecture=lambda_.Architecture.X86_64, removal_policy=RemovalPolicy.DESTROY
        )

        go_role, go_logs = function_role_and_logs(self, "GoSample", also=EXPORTS_TOO)
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
        self._add_with_export(arm64_layer, self.go_function)

        self.python_function = self._python_sample("PythonSample", "Invocation History sample (Python, x86_64)")
        self._add_with_export(x86_64_layer, self.python_function)

        # The same Python sample through the Runtime API proxy. On Lambda, unlike on the RIE, the managed runtime
        # applies AWS_LAMBDA_EXEC_WRAPPER: this function is where the wrapper path is exercised for real.
        self.python_proxy_function = self._python_sample(
            "PythonProxySample", "Invocation History sample (Python, x86_64) through the Runtime API proxy"
        )
        self._add_with_export(x86_64_layer, self.python_proxy_function, runtime_proxy=True)

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

        # The export as the Athena table invocation_history (partition projection, no crawler) and the named queries.
        self.history_table = InvocationHistoryTable(
            self,
            "History",
            bucket=self.export_bucket,
            functions=[self.go_function, self.python_function, self.python_proxy_function],
        )

        CfnOutput(self, "GoSampleFunctionName", value=self.go_function.function_name,
                  description="Go sample (provided.al2023, arm64) with the extension layer")
        CfnOutput(self, "PythonSampleFunctionName", value=self.python_function.function_name,
                  description="Python sample (python3.13, x86_64) with the extension layer")
        CfnOutput(self, "PythonProxySampleFunctionName", value=self.python_proxy_function.function_name,
                  description="Python sample (python3.13, x86_64) with the extension layer and the Runtime API proxy")
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard.dashboard_name,
                  description="CloudWatch dashboard of the samples' execution environments")
        CfnOutput(self, "ExportBucketName", value=self.export_bucket.bucket_name,
                  description=f"S3 bucket of the samples' exported history (under {DEFAULT_EXPORT_PREFIX}, "
                  f"deleted after {export_expire_days} days; kept when the stack is deleted)")
        CfnOutput(self, "HistoryWorkGroup", value=self.history_table.workgroup_name,
                  description="Athena workgroup of the named queries over the export (results encrypted, own bucket)")
        CfnOutput(self, "HistoryDatabase", value=self.history_table.database_name,
                  description=f"Glue database of the table {self.history_table.table_name} over the export")

    def _add_with_export(self, layer: InvocationHistoryLayer, fn: lambda_.Function, **settings: Any) -> None:
        """Add the layer to ``fn`` with its history exported to the stack's bucket."""
        layer.add_function(fn, ExtensionSettings(export_bucket=self.export_bucket, **settings))
        # PutObject on <bucket>/invocation-history/* is the narrowest grant for keys the extension names itself.
        Validations.of(fn.role).acknowledge(Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.export_bucket.node.default_child)}.Arn>/"
               f"{DEFAULT_EXPORT_PREFIX}*]",
            reason="the extension writes objects under one key prefix with names it makes up per batch "
            "(function, date, hour, environment, sequence): s3:PutObject on that prefix only is the narrowest grant",
        ))

    def _python_sample(self, id: str, description: str) -> lambda_.Function:
        role, log_group = function_role_and_logs(self, id, also=EXPORTS_TOO)
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


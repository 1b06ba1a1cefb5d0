"""The Go sample as a container image with the extension built into /opt/extensions (images take no layers)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, IgnoreMode, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.demo_stack import REPO_ROOT, function_role_and_logs
from invocation_history_cdk import extension_environment

DOCKERFILE = "functions/container/Dockerfile"
#: The build context is the repository root (the image needs extension_src/ and functions/go/); only the paths that
#: the Dockerfile's own ignore file lets in are staged, so the asset hash and the staged copy ignore .venv,
#: node_modules, cdk.out, tests and cargo's target dirs, and a build by hand sends the same context.
CONTEXT_EXCLUDE = [
    line.strip()
    for line in (REPO_ROOT / f"{DOCKERFILE}.dockerignore").read_text().splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


class ContainerStack(Stack):
    """A ``DockerImageFunction`` from ``functions/container/Dockerfile``; synthesis only stages the context."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        architecture: lambda_.Architecture = lambda_.Architecture.ARM_64,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        platform = (
            ecr_assets.Platform.LINUX_ARM64
            if architecture.name == "arm64"
            else ecr_assets.Platform.LINUX_AMD64
        )
        role, log_group = function_role_and_logs(self, "ContainerSample")
        self.function = lambda_.DockerImageFunction(
            self,
            "ContainerSample",
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT),
                file=DOCKERFILE,
                platform=platform,  # docker build --platform: the Dockerfile builds for TARGETARCH
                exclude=CONTEXT_EXCLUDE,
                ignore_mode=IgnoreMode.DOCKER,
            ),
            architecture=architecture,
            memory_size=128,
            timeout=Duration.seconds(10),
            role=role,
            log_group=log_group,
            environment=extension_environment(),
            description=f"Invocation History sample (Go container image, {architecture.name})",
        )
        CfnOutput(self, "ContainerSampleFunctionName", value=self.function.function_name,
                  description=f"Go sample as a container image ({architecture.name}) with the extension inside")

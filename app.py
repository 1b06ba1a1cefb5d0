#!/usr/bin/env python3
"""The CDK app: the extension layers, the sample functions with them, and the container-image variant.

    make synth     # cdk synth with the pinned CLI (offline, no Docker engine needed)
    make deploy    # all three stacks, outputs in cdk-outputs.json
"""

from __future__ import annotations

import os
from typing import Optional

import aws_cdk as cdk

from stacks.container_stack import ContainerStack
from stacks.demo_stack import EXPORT_EXPIRE_DAYS_CONTEXT_KEY, DemoStack, parse_expire_days
from stacks.layer_stack import SHARE_CONTEXT_KEY, LayerStack, parse_share_with

LAYER_STACK = "InvocationHistoryLayers"
DEMO_STACK = "InvocationHistoryDemo"
CONTAINER_STACK = "InvocationHistoryContainer"


def create_stacks(app: cdk.App, env: Optional[cdk.Environment] = None) -> dict[str, cdk.Stack]:
    """Add the app's three stacks to ``app``; ``env`` defaults to the CLI's account and region (or none)."""
    if env is None:
        env = cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
        )
    share_with = parse_share_with(app.node.try_get_context(SHARE_CONTEXT_KEY))
    stacks: dict[str, cdk.Stack] = {
        LAYER_STACK: LayerStack(
            app, LAYER_STACK, env=env, share_with=share_with,
            description="Invocation History extension layers (x86_64, arm64) and their SSM parameters",
        ),
        DEMO_STACK: DemoStack(
            app, DEMO_STACK, env=env,
            export_expire_days=parse_expire_days(app.node.try_get_context(EXPORT_EXPIRE_DAYS_CONTEXT_KEY)),
            description="Invocation History sample functions (Go arm64, Python x86_64, Python with the Runtime API proxy) with the extension layer, their history exported to S3, and a dashboard",
        ),
        CONTAINER_STACK: ContainerStack(
            app, CONTAINER_STACK, env=env,
            description="Invocation History sample as a container image with the extension built in",
        ),
    }
    for stack in stacks.values():
        cdk.Tags.of(stack).add("project", "invocation-history")
    return stacks


def main() -> None:
    app = cdk.App()
    create_stacks(app)
    app.synth()


if __name__ == "__main__":
    main()

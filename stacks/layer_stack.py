"""Publishes the extension layer for both architectures and tells where to find the latest versions."""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence, Union

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from invocation_history_cdk import InvocationHistoryLayer

#: cdk.json / `-c` context key: accounts (12 digits) and organizations (o-...) allowed to use the layers.
SHARE_CONTEXT_KEY = "invocationHistory:layerShareWith"
#: SSM parameter holding the newest layer version ARN for an architecture.
PARAMETER_NAME = "/invocation-history/layer/{arch}/arn"
ARCHITECTURES = (lambda_.Architecture.X86_64, lambda_.Architecture.ARM_64)


def parse_share_with(value: Union[None, str, Iterable[str]]) -> list[str]:
    """The ``invocationHistory:layerShareWith`` context value as a list: JSON list in cdk.json, commas with `-c`."""
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    principals = [str(item).strip() for item in items if str(item).strip()]
    for principal in principals:
        if not (re.fullmatch(r"\d{12}", principal) or re.fullmatch(r"o-[a-z0-9]{10,32}", principal)):
            raise ValueError(
                f"context {SHARE_CONTEXT_KEY} has {principal!r}, which is neither a 12-digit account id nor an "
                "organization id (o-...): list accounts and organizations only (public sharing is not offered)"
            )
    return principals


def arch_suffix(architecture: lambda_.Architecture) -> str:
    """``X8664`` or ``Arm64``: construct ids and output names per architecture."""
    return {"x86_64": "X8664", "arm64": "Arm64"}[architecture.name]


class LayerStack(Stack):
    """One ``InvocationHistoryLayer`` per architecture, each ARN as an output and as an SSM parameter.

    :param share_with: accounts and organizations that may use the layers (``lambda:GetLayerVersion``).
        Default: none, the layers stay private to this account.
    """

    def __init__(self, scope: Construct, id: str, *, share_with: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.layers: dict[str, InvocationHistoryLayer] = {}
        for architecture in ARCHITECTURES:
            suffix = arch_suffix(architecture)
            layer = InvocationHistoryLayer(self, f"Layer{suffix}", architecture=architecture)
            for principal in share_with:
                if principal.startswith("o-"):
                    layer.add_permission(f"ShareWith{principal}", account_id="*", organization_id=principal)
                else:
                    layer.add_permission(f"ShareWith{principal}", account_id=principal)
            ssm.StringParameter(
                self,
                f"LayerVersionArnParameter{suffix}",
                parameter_name=PARAMETER_NAME.format(arch=architecture.name),
                string_value=layer.layer_version_arn,
                description=f"Newest Invocation History extension layer version for {architecture.name}",
            )
            CfnOutput(
                self,
                f"LayerVersionArn{suffix}",
                value=layer.layer_version_arn,
                description=f"Invocation History extension layer version ({architecture.name})",
            )
            self.layers[architecture.name] = layer

"""Invocation History for AWS Lambda, as CDK constructs.

The common case is one call: ``add_invocation_history(fn)`` (any function, any architecture, or a list of them) or
``Aspects.of(scope).add(InvocationHistoryAspect())`` (every function in a scope), with ``ExtensionSettings``.
``InvocationHistoryLayer`` is the layer for one architecture; ``extension_environment`` and ``grant_export`` serve
functions that carry the extension themselves (container images); ``InvocationHistoryDashboard`` graphs the execution
environments; ``InvocationHistoryTable`` makes the S3 export an Athena table with named queries.
"""

from .attach import InvocationHistoryAspect, add_invocation_history
from .build import LayerBuildError
from .dashboard import InvocationHistoryDashboard
from .export import grant_export
from .history_table import InvocationHistoryTable
from .layer import InvocationHistoryLayer
from .settings import ExtensionSettings, export_environment, extension_environment

__all__ = [
    "ExtensionSettings",
    "InvocationHistoryAspect",
    "InvocationHistoryDashboard",
    "InvocationHistoryLayer",
    "InvocationHistoryTable",
    "LayerBuildError",
    "add_invocation_history",
    "export_environment",
    "extension_environment",
    "grant_export",
]

"""Invocation History for AWS Lambda, as CDK constructs.

The common case is one call: ``add_invocation_history(fn)`` (any function, any architecture, or a list of them) or
``Aspects.of(scope).add(InvocationHistoryAspect())`` (every function in a scope), with ``ExtensionSettings``.
``InvocationHistoryLayer`` is the layer for one architecture; ``extension_environment`` and ``grant_export`` serve
functions that carry the extension themselves (container images); ``InvocationHistoryDashboard`` graphs the execution
environments.
"""

from .attach import InvocationHistoryAspect, add_invocation_history
from .build import LayerBuildError
from .dashboard import InvocationHistoryDashboard
from .export import grant_export
from .layer import InvocationHistoryLayer
from .settings import ExtensionSettings, export_environment, extension_environment

__all__ = [
    "ExtensionSettings",
    "InvocationHistoryAspect",
    "InvocationHistoryDashboard",
    "InvocationHistoryLayer",
    "LayerBuildError",
    "add_invocation_history",
    "export_environment",
    "extension_environment",
    "grant_export",
]

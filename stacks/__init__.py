"""The CDK app's constructs and stacks. The reusable parts are ``InvocationHistoryLayer`` and
``InvocationHistoryDashboard``."""

# Relative imports: another app may load this package under a name of its own (docs/construct.md).
from .history_dashboard import InvocationHistoryDashboard
from .invocation_history_layer import InvocationHistoryLayer, LayerBuildError, extension_environment, grant_export

__all__ = [
    "InvocationHistoryDashboard", "InvocationHistoryLayer", "LayerBuildError", "extension_environment", "grant_export",
]

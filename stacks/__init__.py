"""The CDK app's constructs and stacks. The reusable parts are ``InvocationHistoryLayer`` and
``InvocationHistoryDashboard``."""

from stacks.history_dashboard import InvocationHistoryDashboard
from stacks.invocation_history_layer import InvocationHistoryLayer, LayerBuildError, extension_environment

__all__ = ["InvocationHistoryDashboard", "InvocationHistoryLayer", "LayerBuildError", "extension_environment"]

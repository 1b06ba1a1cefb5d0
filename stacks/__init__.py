"""The CDK app's constructs and stacks. The reusable part is ``InvocationHistoryLayer``."""

from stacks.invocation_history_layer import InvocationHistoryLayer, LayerBuildError, extension_environment

__all__ = ["InvocationHistoryLayer", "LayerBuildError", "extension_environment"]

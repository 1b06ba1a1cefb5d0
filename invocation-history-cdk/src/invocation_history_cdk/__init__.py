"""Invocation History for AWS Lambda, as CDK constructs: the extension as a layer (``InvocationHistoryLayer``), its
settings (``extension_environment``), the S3 export's grant (``grant_export``) and a dashboard of execution
environments (``InvocationHistoryDashboard``)."""

from .build import LayerBuildError
from .dashboard import InvocationHistoryDashboard
from .export import grant_export
from .layer import InvocationHistoryLayer
from .settings import export_environment, extension_environment

__all__ = [
    "InvocationHistoryDashboard",
    "InvocationHistoryLayer",
    "LayerBuildError",
    "export_environment",
    "extension_environment",
    "grant_export",
]

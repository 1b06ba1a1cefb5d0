"""The common case in one call: the extension on any function, whatever its architecture, on a list of functions, or
on every function in a scope (an Aspect). Each function gets its stack's layer for its architecture
(``InvocationHistoryLayer.of``), made on first need."""

from __future__ import annotations

from typing import Iterable, Optional, Union

import jsii
from aws_cdk import Annotations, IAspect
from aws_cdk import aws_lambda as lambda_
from constructs import Construct, IConstruct

from .layer import _ATTACHED, InvocationHistoryLayer, _settings_of
from .settings import ExtensionSettings


def add_invocation_history(
    functions: Union[lambda_.Function, Iterable[lambda_.Function]], settings: Optional[ExtensionSettings] = None
) -> None:
    """Attach the Invocation History extension to ``functions`` (one function or several), each through its stack's
    layer for its architecture, with ``settings`` (default: ``ExtensionSettings()``, the extension's defaults).

    Example::

        add_invocation_history([api, worker], ExtensionSettings(max_records=1000))

    :raises ValueError: as ``InvocationHistoryLayer.add_function`` does (a container image, a function not defined in
        this app, a function that already has the extension, an invalid setting); the functions before it keep the
        extension.
    """
    settings = _settings_of(settings, {})
    targets = [functions] if isinstance(functions, Construct) else list(functions)
    for fn in targets:
        architecture = getattr(fn, "architecture", None) or lambda_.Architecture.X86_64
        InvocationHistoryLayer.of(fn, architecture).add_function(fn, settings)


@jsii.implements(IAspect)
class InvocationHistoryAspect:
    """Attaches the extension to every ``lambda_.Function`` in the scope it is added to, at synth.

    Functions that already have the extension (from ``add_invocation_history`` or ``add_function``, with settings of
    their own) are left as they are; container images, which take no layers, get a warning instead. The aspect also
    reaches functions that CDK's own constructs make inside the scope (custom-resource providers): add it to the scope
    of your functions to keep them out. Example::

        Aspects.of(stack).add(InvocationHistoryAspect(ExtensionSettings(log_level="DEBUG")))
    """

    def __init__(self, settings: Optional[ExtensionSettings] = None) -> None:
        self.settings = _settings_of(settings, {})

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, lambda_.Function) or getattr(node, _ATTACHED, None) is not None:
            return
        if node.runtime.name == lambda_.Runtime.FROM_IMAGE.name:
            Annotations.of(node).add_warning(
                "InvocationHistoryAspect: container images take no layers, so this function has no Invocation "
                "History: build the extension into the image (examples/my-app/Dockerfile) and set "
                "extension_environment() on it"
            )
            return
        add_invocation_history(node, self.settings)

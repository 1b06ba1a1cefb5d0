"""Puts the prebuilt layer zips into the wheel, so installing it and synthesizing need no Rust, Go or Docker.

``make dist`` sets ``INVOCATION_HISTORY_CDK_LAYERS`` to the directory of ``make layer``'s zips (``dist/``); a wheel
built without it (``pip install git+...``, an editable install) carries none, and the construct then builds the layer
from the extension's source.
"""

from __future__ import annotations

import os
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LAYERS_VARIABLE = "INVOCATION_HISTORY_CDK_LAYERS"
ARCHITECTURES = ("x86_64", "arm64")


class LayerZipsHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        layers = os.environ.get(LAYERS_VARIABLE)
        if self.target_name != "wheel" or version == "editable" or not layers:
            return
        for architecture in ARCHITECTURES:
            zip_path = Path(layers) / f"invocation-history-extension-{architecture}.zip"
            if not zip_path.is_file():
                raise FileNotFoundError(
                    f"{LAYERS_VARIABLE}={layers}: no {zip_path.name} there: build the zips with `make layer`"
                )
            build_data["force_include"][str(zip_path.resolve())] = f"invocation_history_cdk/layers/{zip_path.name}"

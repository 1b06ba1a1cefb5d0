"""Prints each Lambda function of a synthesized template: its architecture, its layers (with the architecture each
layer is for) and its environment variables. Usage: python show_functions.py cdk.out/MyApp.template.json"""

import json
import sys

resources = json.loads(open(sys.argv[1]).read())["Resources"]
for logical_id, resource in resources.items():
    if resource["Type"] != "AWS::Lambda::Function":
        continue
    properties = resource["Properties"]
    print(f"{logical_id} ({properties.get('Architectures', ['x86_64'])[0]})")
    for layer in properties.get("Layers", []):
        layer_id = layer["Ref"]
        print(f"  layer {layer_id} (for {resources[layer_id]['Properties']['CompatibleArchitectures'][0]})")
    for name, value in properties.get("Environment", {}).get("Variables", {}).items():
        print(f"  {name}={value}")

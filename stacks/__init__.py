"""This repository's CDK app: its stacks (layers, demo, container image). The constructs they use are the
``invocation_history_cdk`` package (``invocation-history-cdk/``), imported as any app would."""

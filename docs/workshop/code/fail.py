"""A function that fails: what does the history say about it?"""


def handler(event, context):
    raise ValueError("this invocation fails on purpose")

"""Reads CloudFormation values as text: ``{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ...]]}``
becomes ``arn:<AWS::Partition>:...``, the spelling cdk-nag uses in its findings too."""

from __future__ import annotations

from typing import Any


def render(value: Any) -> Any:
    """Strings for Join/Ref/GetAtt, recursively through lists and dicts; other values unchanged."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{'.'.join(argument)}>"
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(render(part)) for part in parts)
    if isinstance(value, dict):
        return {key: render(item) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item) for item in value]
    return value


def as_list(value: Any) -> list[Any]:
    """IAM's Action and Resource are a string or a list of them."""
    return value if isinstance(value, list) else [value]

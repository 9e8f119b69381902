#!/usr/bin/env python3
"""Checks the documents `activegate-lifecycle translate` prints against AWS's
own request models (botocore, the library behind the AWS CLI's
`--cli-input-json`), independently of the product's Rust types.

Usage: check_aws_shapes.py OPERATION=FILE [OPERATION=FILE ...]
  OPERATION is an ECS operation name, e.g. RegisterTaskDefinition, CreateService.

botocore's validator checks required members, unknown members, types and
ranges; it does not check enumerations, so this script walks the shape and
checks every enum value too. Prints one line per document and a closing
"N passed, N failed" line; exits 1 if any document fails.
"""
import json
import sys

import botocore.session
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters


def enum_errors(value, shape, path):
    """Yields enum violations anywhere in `value`."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                yield from enum_errors(value[name], member, f"{path}.{name}" if path else name)
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from enum_errors(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for k, v in value.items():
            yield from enum_errors(v, shape.value, f"{path}.{k}")
    elif shape.type_name == "string" and getattr(shape, "enum", None):
        if value not in shape.enum:
            yield f"{path}: {value!r} is not one of {shape.enum}"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    model = botocore.session.get_session().get_service_model("ecs")
    passed = failed = 0
    for arg in argv[1:]:
        operation, _, path = arg.partition("=")
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        shape = model.operation_model(operation).input_shape
        problems = []
        try:
            validate_parameters(document, shape)
        except ParamValidationError as e:
            problems.append(str(e))
        problems.extend(enum_errors(document, shape, ""))
        if problems:
            failed += 1
            print(f"FAIL {operation} {path}")
            for p in problems:
                print(f"  {p}")
        else:
            passed += 1
            print(f"ok   {operation} {path}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

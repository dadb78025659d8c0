"""Checks examples/add-layer/main.tf without Terraform (none runs offline): parsed with
python-hcl2, the function must carry the layer from the ARN variable, name its flags path in
SSM_FLAGS_PATH, and its role must be granted ssm:GetParametersByPath on that path (and
ssm:GetParameters under it). Then the check is run on broken copies, each of which it must refuse.

    .venv/bin/python examples/add-layer/check_terraform.py [main.tf]

Run by `make add-layer-check`.
"""

import io
import sys
from pathlib import Path

import hcl2

MAIN_TF = Path(__file__).with_name("main.tf")


def plain(value):
    """python-hcl2 keeps a string literal's quotes (and a block label's): drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items() if k != "__is_block__"}
    return value


def blocks(doc, kind):
    """{type: {name: body}} of the `resource` or `data` blocks."""
    out = {}
    for entry in doc.get(kind, []):
        for type_, named in entry.items():
            out.setdefault(type_, {}).update(named)
    return out


def check(text):
    """The problems of one main.tf, as sentences; none when it is right."""
    doc = plain(hcl2.load(io.StringIO(text)))
    problems = []
    variables = {k: v for entry in doc.get("variable", []) for k, v in entry.items()}
    locals_ = {k: v for entry in doc.get("locals", []) for k, v in entry.items()}
    resources, data = blocks(doc, "resource"), blocks(doc, "data")

    if variables.get("ssm_flags_layer_arn", {}).get("type") != "string":
        problems.append("no string variable ssm_flags_layer_arn")
    if not str(variables.get("flags_path", {}).get("default", "")).startswith("/"):
        problems.append("variable flags_path has no default path starting with /")

    functions = resources.get("aws_lambda_function", {})
    if len(functions) != 1:
        return problems + [f"expected one aws_lambda_function, found {len(functions)}"]
    [(name, function)] = functions.items()
    if function.get("layers") != ["${var.ssm_flags_layer_arn}"]:
        problems.append(f"aws_lambda_function.{name}.layers is {function.get('layers')!r}, "
                        "not [var.ssm_flags_layer_arn]")
    environment = function.get("environment", [{}])[0].get("variables", {})
    if environment.get("SSM_FLAGS_PATH") != "${var.flags_path}":
        problems.append(f"aws_lambda_function.{name} sets no SSM_FLAGS_PATH = var.flags_path "
                        f"(environment: {environment!r})")
    if function.get("architectures") != ["${var.architecture}"]:
        problems.append(f"aws_lambda_function.{name}.architectures is not [var.architecture]")

    # The function's role, and the inline policy on that role.
    role = function.get("role", "")
    if not (role.startswith("${aws_iam_role.") and role.endswith(".arn}")):
        return problems + [f"aws_lambda_function.{name}.role is {role!r}, not an aws_iam_role's arn"]
    role_name = role[len("${aws_iam_role."):-len(".arn}")]
    if role_name not in resources.get("aws_iam_role", {}):
        problems.append(f"aws_iam_role.{role_name} is not defined")
    granted = []
    for policy in resources.get("aws_iam_role_policy", {}).values():
        if policy.get("role") not in (f"${{aws_iam_role.{role_name}.id}}",
                                      f"${{aws_iam_role.{role_name}.name}}"):
            continue
        ref = policy.get("policy", "")
        if ref.startswith("${data.aws_iam_policy_document.") and ref.endswith(".json}"):
            document = ref[len("${data.aws_iam_policy_document."):-len(".json}")]
            granted += data.get("aws_iam_policy_document", {}).get(document, {}).get("statement", [])
    path_arn = locals_.get("flags_path_arn", "")
    if not (":ssm:" in path_arn and path_arn.endswith(":parameter${var.flags_path}")):
        problems.append(f"local.flags_path_arn is {path_arn!r}, not the ARN of var.flags_path")

    def allows(action, resource):
        return any(action in s.get("actions", []) and resource in s.get("resources", [])
                   and s.get("effect", "Allow") == "Allow" for s in granted)

    if not allows("ssm:GetParametersByPath", "${local.flags_path_arn}"):
        problems.append(f"the role of aws_lambda_function.{name} is not allowed "
                        "ssm:GetParametersByPath on local.flags_path_arn")
    if not allows("ssm:GetParameters", "${local.flags_path_arn}/*"):
        problems.append(f"the role of aws_lambda_function.{name} is not allowed "
                        "ssm:GetParameters on local.flags_path_arn/*")
    return problems


# Each broken copy: (what is changed, from, to). The check must find a problem in each.
BROKEN = [
    ("no layers", "  layers = [var.ssm_flags_layer_arn]\n", ""),
    ("another layer", "layers = [var.ssm_flags_layer_arn]", 'layers = ["arn:aws:lambda:us-east-1:123456789012:layer:x:1"]'),
    ("another variable name", "SSM_FLAGS_PATH = var.flags_path", "SSM_FLAG_PATH = var.flags_path"),
    ("another action", '["ssm:GetParametersByPath"]', '["ssm:GetParameter"]'),
    ("the policy on no role", "role   = aws_iam_role.function.id", 'role   = "someone-else"'),
    ("another path's ARN", "parameter${var.flags_path}", "parameter/other"),
]


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else MAIN_TF
    text = path.read_text()
    problems = check(text)
    if problems:
        sys.exit(f"{path}:\n  " + "\n  ".join(problems))
    for what, old, new in BROKEN:
        assert old in text, f"{path} no longer contains {old!r}: update BROKEN ({what})"
        if not check(text.replace(old, new, 1)):
            sys.exit(f"the check accepts a broken {path.name} ({what})")
    print(f"{path}: layers, SSM_FLAGS_PATH and ssm:GetParametersByPath as required; "
          f"{len(BROKEN)} broken copies refused")


if __name__ == "__main__":
    main()

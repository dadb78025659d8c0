#!/usr/bin/env bash
# Adds the ssm-flags extension layer to an existing Lambda function with the AWS CLI: the IAM the
# extension needs on the function's role, then the layer (beside the function's other layers; an
# older version of the same layer is replaced) and SSM_FLAGS_PATH (beside its other variables).
#
#   FUNCTION_NAME=my-function \
#   LAYER_ARN=arn:aws:lambda:eu-west-1:123456789012:layer:ssm-flags-arm64:1 \
#   SSM_FLAGS_PATH=/myapp/prod/features \
#   examples/add-layer/aws-cli.sh
#
# LAYER_ARN is a layer version of the function's architecture. Region, credentials and endpoint
# come from the usual AWS settings (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL…). Needs the AWS CLI
# (v1 or v2) and python3, which merges the function's configuration.
set -euo pipefail

: "${FUNCTION_NAME:?the function to add the layer to}"
: "${LAYER_ARN:?the ARN of the ssm-flags layer version, of the architecture of the function}"
: "${SSM_FLAGS_PATH:?the SSM path the flags live under, e.g. /myapp/prod/features}"
AWS=${AWS:-aws}

config=$($AWS lambda get-function-configuration --function-name "$FUNCTION_NAME" --output json)
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <<<"$config"; }
role_arn=$(field Role)
function_arn=$(field FunctionArn) # arn:<partition>:lambda:<region>:<account>:function:<name>
IFS=: read -r _ partition _ region account _ <<<"$function_arn"
path_arn="arn:$partition:ssm:$region:$account:parameter${SSM_FLAGS_PATH%/}"

# 1. What the extension reads: the path, and the flags under it by name (a listing that leaves
#    out known flags is checked by GetParameters before any flag is removed). For SecureString
#    flags, add kms:Decrypt on their key.
$AWS iam put-role-policy --role-name "${role_arn##*/}" --policy-name ssm-flags-read \
  --policy-document "$(
    cat <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadFlagsPath", "Effect": "Allow", "Action": "ssm:GetParametersByPath", "Resource": "$path_arn"},
    {"Sid": "CheckVanishedFlags", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": "$path_arn/*"}
  ]
}
JSON
  )"

# 2. The layer and the variable. --layers and --environment replace the whole list and map, so
#    both are merged with what the function has. The input goes through a private file: the
#    function's variables stay off the command line.
input=$(mktemp)
trap 'rm -f "$input"' EXIT
python3 -c '
import json, sys
config, layer, path = json.load(sys.stdin), sys.argv[1], sys.argv[2]
same = layer.rsplit(":", 1)[0]  # the layer, whatever its version
layers = [l["Arn"] for l in config.get("Layers", []) if l["Arn"].rsplit(":", 1)[0] != same]
variables = config.get("Environment", {}).get("Variables", {})
variables["SSM_FLAGS_PATH"] = path
json.dump({"FunctionName": config["FunctionName"], "Layers": layers + [layer],
           "Environment": {"Variables": variables}}, sys.stdout)
' "$LAYER_ARN" "$SSM_FLAGS_PATH" <<<"$config" >"$input"
$AWS lambda update-function-configuration --cli-input-json "file://$input" \
  --query '{Layers: Layers[].Arn, SSM_FLAGS_PATH: Environment.Variables.SSM_FLAGS_PATH}' --output json
$AWS lambda wait function-updated --function-name "$FUNCTION_NAME"
echo "$FUNCTION_NAME: ssm-flags layer added; the next cold start runs the extension"

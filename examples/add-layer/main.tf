# Adding the ssm-flags extension layer to a function with Terraform: the layer by its ARN, the
# flags path, and the IAM the extension needs. On an existing aws_lambda_function, what matters
# is `layers`, `environment` and the aws_iam_role_policy.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

variable "ssm_flags_layer_arn" {
  type        = string
  description = "ARN of the ssm-flags layer version (an output of deploy/layer.yaml, or what `make publish-layer` printed), of the function's architecture"
}

variable "flags_path" {
  type        = string
  default     = "/myapp/prod/features"
  description = "The SSM path the flags live under (SSM_FLAGS_PATH)"
}

variable "architecture" {
  type        = string
  default     = "arm64"
  description = "The function's architecture, which is the layer version's"
  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture is arm64 or x86_64."
  }
}

variable "function_zip" {
  type        = string
  description = "The function's deployment package (for a Rust function, cargo lambda build --output-format zip)"
}

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  flags_path_arn = "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:parameter${var.flags_path}"
}

resource "aws_iam_role" "function" {
  name_prefix = "flags-example-"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "lambda.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy_attachment" "logs" {
  role       = aws_iam_role.function.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

# What the extension reads: the path, and the flags under it by name (a listing that leaves out
# known flags is checked by GetParameters before any flag is removed).
data "aws_iam_policy_document" "read_flags" {
  statement {
    sid       = "ReadFlagsPath"
    actions   = ["ssm:GetParametersByPath"]
    resources = [local.flags_path_arn]
  }
  statement {
    sid       = "CheckVanishedFlags"
    actions   = ["ssm:GetParameters"]
    resources = ["${local.flags_path_arn}/*"]
  }
}

resource "aws_iam_role_policy" "read_flags" {
  name   = "read-flags"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.read_flags.json
}

resource "aws_lambda_function" "flags" {
  function_name    = "flags-example"
  role             = aws_iam_role.function.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.function_zip
  source_code_hash = filebase64sha256(var.function_zip)

  layers = [var.ssm_flags_layer_arn]

  environment {
    variables = {
      SSM_FLAGS_PATH = var.flags_path
    }
  }
}

output "function_name" {
  value = aws_lambda_function.flags.function_name
}

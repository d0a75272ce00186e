# Slipway's AWS side: the OIDC-federated role the runner assumes from GitHub Actions, and the
# S3 bucket with Object Lock that mirrors the audit trail.
#
#   module "slipway" {
#     source              = "./deploy/terraform"
#     github_repository   = "acme/gitops"
#     runner_workflow     = "acme/slipway-runner-workflow/.github/workflows/slipway-runner.yml"
#     runner_workflow_ref = "0000000000000000000000000000000000000000" # the commit the caller pins
#     audit_bucket_name   = "acme-slipway-audit"
#   }

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

data "aws_caller_identity" "current" {}

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_oidc_provider ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  oidc_provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : "arn:aws:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/token.actions.githubusercontent.com"
}

# Without a `sub` condition any repository could assume the role. AWS evaluates only standard
# claims, so the workflow is pinned through a customised subject: set the GitOps repo's OIDC
# subject template first (PUT /repos/OWNER/REPO/actions/oidc/customization/sub with
# {"use_default": false, "include_claim_keys": ["repo", "context", "job_workflow_ref"]}). The
# subject then names the GitOps repo, its default branch, and the reusable runner workflow (in
# its own protected repository) at one commit or tag. A workflow merged into the GitOps repo
# has another job_workflow_ref, so it never gets this role.
data "aws_iam_policy_document" "runner_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:ref:refs/heads/${var.default_branch}:job_workflow_ref:${var.runner_workflow}@${var.runner_workflow_ref}"]
    }
  }
}

resource "aws_iam_role" "runner" {
  name                 = var.runner_role_name
  assume_role_policy   = data.aws_iam_policy_document.runner_trust.json
  max_session_duration = 3600

  lifecycle {
    precondition {
      condition     = !startswith(lower(var.runner_workflow), "${lower(var.github_repository)}/")
      error_message = "runner_workflow must live in its own protected repository, not in the GitOps repository: anyone who can merge there could change it."
    }
  }
}

resource "aws_iam_role_policy_attachment" "runner" {
  for_each   = toset(var.runner_policy_arns)
  role       = aws_iam_role.runner.name
  policy_arn = each.value
}

# The audit mirror: versioned (Object Lock requires it), COMPLIANCE retention by default, no
# public access, and only the bridge and runner may write.
resource "aws_s3_bucket" "audit" {
  bucket              = var.audit_bucket_name
  object_lock_enabled = true
}

resource "aws_s3_bucket_versioning" "audit" {
  bucket = aws_s3_bucket.audit.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    default_retention {
      mode = var.audit_retention_mode
      days = var.audit_retention_days
    }
  }
}

resource "aws_s3_bucket_public_access_block" "audit" {
  bucket                  = aws_s3_bucket.audit.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

data "aws_iam_policy_document" "audit_writer" {
  statement {
    actions   = ["s3:PutObject", "s3:PutObjectRetention", "s3:GetObject", "s3:GetObjectRetention", "s3:ListBucket", "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration"]
    resources = [aws_s3_bucket.audit.arn, "${aws_s3_bucket.audit.arn}/*"]
  }
}

resource "aws_iam_policy" "audit_writer" {
  name   = "${var.runner_role_name}-audit-writer"
  policy = data.aws_iam_policy_document.audit_writer.json
}

resource "aws_iam_role_policy_attachment" "runner_audit" {
  role       = aws_iam_role.runner.name
  policy_arn = aws_iam_policy.audit_writer.arn
}

output "runner_role_arn" {
  value = aws_iam_role.runner.arn
}

output "audit_bucket" {
  value = aws_s3_bucket.audit.bucket
}

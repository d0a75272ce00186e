variable "github_repository" {
  description = "The GitOps repository, owner/name."
  type        = string
}

variable "default_branch" {
  description = "The branch merges land on; only runs from it may assume the role."
  type        = string
  default     = "main"
}

variable "workflow_path" {
  description = "Path of the runner workflow in the GitOps repo (pinned via job_workflow_ref)."
  type        = string
  default     = ".github/workflows/slipway-runner.yml"
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub Actions OIDC provider (false if it already exists)."
  type        = bool
  default     = true
}

variable "runner_role_name" {
  type    = string
  default = "slipway-runner"
}

variable "runner_policy_arns" {
  description = "Policies the runner needs to apply changes (scope them to the managed resources)."
  type        = list(string)
  default     = []
}

variable "audit_bucket_name" {
  type = string
}

variable "audit_retention_mode" {
  description = "COMPLIANCE (no one can shorten or remove it) or GOVERNANCE."
  type        = string
  default     = "COMPLIANCE"
}

variable "audit_retention_days" {
  type    = number
  default = 400
}

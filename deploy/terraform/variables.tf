variable "github_repository" {
  description = "The GitOps repository, owner/name."
  type        = string
}

variable "default_branch" {
  description = "The branch merges land on; only runs from it may assume the role."
  type        = string
  default     = "main"
}

variable "runner_workflow" {
  description = "The reusable runner workflow, owner/repo/path, in its own protected repository (not the GitOps repo)."
  type        = string
  validation {
    condition     = can(regex("^[^/]+/[^/]+/\\.github/workflows/[^/]+\\.ya?ml$", var.runner_workflow))
    error_message = "runner_workflow is owner/repo/.github/workflows/<file>.yml, e.g. acme/slipway-runner-workflow/.github/workflows/slipway-runner.yml."
  }
}

variable "runner_workflow_ref" {
  description = "The commit (40 hex digits, preferred) or tag (refs/tags/...) the GitOps repo's caller pins the runner workflow at; pinned via job_workflow_ref."
  type        = string
  validation {
    condition     = can(regex("^([0-9a-f]{40}|refs/tags/[^*?]+)$", var.runner_workflow_ref))
    error_message = "runner_workflow_ref is a full commit SHA (lower-case hex) or refs/tags/<tag>, never a branch: a branch moves without review of the trust policy."
  }
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

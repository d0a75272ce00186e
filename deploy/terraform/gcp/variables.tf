variable "project_id" {
  description = "The project that holds the identity pool and Slipway's service accounts."
  type        = string
}

variable "github_repository" {
  description = "The GitOps repository, owner/name."
  type        = string
}

variable "default_branch" {
  description = "The branch merges land on; only runs from it get a token."
  type        = string
  default     = "main"
}

variable "runner_workflow" {
  description = "The reusable runner workflow, owner/repo/.github/workflows/<file>.yml, in its own protected repository."
  type        = string
  validation {
    condition     = can(regex("^[^/]+/[^/]+/\\.github/workflows/[^/]+\\.ya?ml$", var.runner_workflow))
    error_message = "runner_workflow is owner/repo/.github/workflows/<file>.yml."
  }
}

variable "runner_workflow_ref" {
  description = "The commit (40 hex digits) or tag (refs/tags/...) the runner workflow is pinned at; never a branch."
  type        = string
  validation {
    condition     = can(regex("^([0-9a-f]{40}|refs/tags/[^*?]+)$", var.runner_workflow_ref))
    error_message = "runner_workflow_ref is a full commit SHA or refs/tags/<tag>, never a branch."
  }
}

variable "pool_id" {
  type    = string
  default = "github"
}

variable "provider_id" {
  type    = string
  default = "slipway"
}

variable "runner_account_id" {
  type    = string
  default = "slipway-runner"
}

variable "runner_projects" {
  description = "Projects the runner applies changes in."
  type        = list(string)
  default     = []
}

variable "runner_roles" {
  description = "Roles the runner needs on those projects (scope them to the managed resources)."
  type        = list(string)
  default     = []
}

variable "read_projects" {
  description = "/gcloud project aliases (the policy's targets.gcp_projects) → project ids."
  type        = map(string)
  default     = {}
}

variable "read_role" {
  description = "The read role each alias's account gets on its project."
  type        = string
  default     = "roles/viewer"
}

variable "bridge_service_account" {
  description = "The bridge's own service account (its key or its GKE workload identity): it may only mint tokens for the read accounts."
  type        = string
}

# Slipway's Google Cloud side: the Workload Identity Federation pool and provider the runner's
# GitHub Actions job exchanges its OIDC token at, the runner's service account, and one
# read-only service account per project alias that the bridge impersonates for /gcloud reads.
#
#   module "slipway_gcp" {
#     source              = "./deploy/terraform/gcp"
#     project_id          = "acme-platform"                  # where the pool and accounts live
#     github_repository   = "acme/gitops"
#     runner_workflow     = "acme/slipway-runner-workflow/.github/workflows/slipway-runner.yml"
#     runner_workflow_ref = "0000000000000000000000000000000000000000"
#     read_projects       = { gcp-staging = "acme-staging", gcp-prod = "acme-prod" }
#     bridge_service_account = "slipway-bridge@acme-platform.iam.gserviceaccount.com"
#   }
#
# The Google provider can't be downloaded in Slipway's CI, so this module is checked with
# `terraform fmt -check` only; `terraform validate` it in your own pipeline.

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0"
    }
  }
}

resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project_id
  workload_identity_pool_id = var.pool_id
  display_name              = "GitHub Actions"
}

# The attribute condition is checked at every token exchange: only the GitOps repository, on its
# default branch, running the reusable runner workflow pinned at one commit or tag, gets a
# federated token at all. A workflow merged into the GitOps repo has another job_workflow_ref.
resource "google_iam_workload_identity_pool_provider" "slipway" {
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = var.provider_id
  attribute_mapping = {
    "google.subject"             = "assertion.sub"
    "attribute.repository"       = "assertion.repository"
    "attribute.ref"              = "assertion.ref"
    "attribute.job_workflow_ref" = "assertion.job_workflow_ref"
  }
  attribute_condition = "assertion.repository == '${var.github_repository}' && assertion.ref == 'refs/heads/${var.default_branch}' && assertion.job_workflow_ref == '${var.runner_workflow}@${var.runner_workflow_ref}'"
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

# What the runner becomes: it applies changes, so grant it only the roles the managed resources
# need (runner_roles), on the projects it changes.
resource "google_service_account" "runner" {
  project      = var.project_id
  account_id   = var.runner_account_id
  display_name = "Slipway runner (merged changes only)"
}

resource "google_service_account_iam_member" "runner_federation" {
  service_account_id = google_service_account.runner.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.job_workflow_ref/${var.runner_workflow}@${var.runner_workflow_ref}"
}

resource "google_project_iam_member" "runner" {
  for_each = { for pair in setproduct(var.runner_projects, var.runner_roles) : "${pair[0]} ${pair[1]}" => pair }
  project  = each.value[0]
  role     = each.value[1]
  member   = "serviceAccount:${google_service_account.runner.email}"
}

# One read-only account per /gcloud project alias. roles/viewer reads metadata, which can hold
# startup scripts: the bridge strips those fields before output, and refuses commands that
# print secrets whatever the account may read.
resource "google_service_account" "read" {
  for_each     = var.read_projects
  project      = var.project_id
  account_id   = "slipway-read-${each.key}"
  display_name = "Slipway read-only: ${each.value}"
}

resource "google_project_iam_member" "read" {
  for_each = var.read_projects
  project  = each.value
  role     = var.read_role
  member   = "serviceAccount:${google_service_account.read[each.key].email}"
}

# The bridge's own identity may only mint short-lived tokens for the read accounts.
resource "google_service_account_iam_member" "bridge_mints_reads" {
  for_each           = var.read_projects
  service_account_id = google_service_account.read[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${var.bridge_service_account}"
}

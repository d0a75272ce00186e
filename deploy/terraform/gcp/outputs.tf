output "workload_identity_provider" {
  description = "The runner's gcp.workload_identity_provider."
  value       = google_iam_workload_identity_pool_provider.slipway.name
}

output "runner_service_account" {
  description = "The runner's stacks.<name>.gcp_service_account / clusters.<name>.gcp_service_account."
  value       = google_service_account.runner.email
}

output "read_service_accounts" {
  description = "The bridge's gcp_projects.<alias>.service_account, per alias."
  value       = { for alias, sa in google_service_account.read : alias => sa.email }
}

variable "queue_name" {
  description = "SQS queue of jobs (the seed document's name by default)."
  type        = string
  default     = "flowcraft-jobs"
}

variable "dlq_name" {
  description = "Dead-letter queue of the jobs queue."
  type        = string
  default     = "flowcraft-jobs-dlq"
}

variable "context_table_name" {
  description = "DynamoDB table of run contexts (hash key runId)."
  type        = string
  default     = "flowcraft-contexts"
}

variable "status_table_name" {
  description = "DynamoDB table of run statuses (hash key runId)."
  type        = string
  default     = "flowcraft-statuses"
}

variable "coordination_table_name" {
  description = "DynamoDB table for coordination (locks, counters)."
  type        = string
  default     = "flowcraft-coordination"
}

variable "coordination_key" {
  description = "Hash key of the coordination table: \"key\" as in the seed document (the TS package README uses \"coordinationKey\")."
  type        = string
  default     = "key"
}

variable "max_receive_count" {
  description = "Receives of one message before SQS moves it to the DLQ."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be 1..1000 (SQS's redrive policy range)."
  }
}

variable "visibility_timeout_seconds" {
  description = "The queue's visibility timeout. Workers receive with their own --visibility-timeout and extend it while a node runs; this applies to other consumers."
  type        = number
  default     = 60

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be 0..43200 (12 h, SQS's limit)."
  }
}

variable "message_retention_seconds" {
  description = "How long an unreceived job stays in the queue (SQS default 4 days; at most 14 days)."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be 60..1209600."
  }
}

variable "point_in_time_recovery" {
  description = "Continuous backups (point-in-time recovery) for the three tables."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Refuse to delete the tables (set true in production)."
  type        = bool
  default     = false
}

variable "policy_name" {
  description = "Name of the IAM policy for workers and clients."
  type        = string
  default     = "flowcraft-worker"
}

variable "attach_to_role_names" {
  description = "IAM roles to attach the policy to, e.g. the EC2 instance role of the workers."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

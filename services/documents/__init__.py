"""Documents: a tenant's files in S3 with their records, text extraction, and embeddings."""

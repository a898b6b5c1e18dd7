"""The lake: one Parquet object per month (and one quarantine object), in a local folder or on S3."""

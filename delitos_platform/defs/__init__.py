"""What the Dagster UI shows, one folder per step of the story: source → lake → bronze → dbt → automation."""

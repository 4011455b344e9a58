"""The "Provenance" view of a task instance inside the Airflow UI (an api-server plugin)."""

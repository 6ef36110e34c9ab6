"""Airflow hooks: they own the connections (MLflow, the artifact store's S3) and resolve them lazily."""

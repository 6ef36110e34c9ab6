"""The registry tests use the session's real MLflow server over moto S3 (tests/servers.py)."""

-- Runs once, when the PostgreSQL volume is created: one database and role each for Airflow and Marquez.
-- The passwords come from the environment of the postgres service (see compose.yaml).
\set airflow_password `echo "$AIRFLOW_DB_PASSWORD"`
\set marquez_password `echo "$MARQUEZ_DB_PASSWORD"`
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE marquez LOGIN PASSWORD :'marquez_password';
CREATE DATABASE marquez OWNER marquez;

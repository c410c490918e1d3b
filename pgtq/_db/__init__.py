"""SQL-engine layer: the only code that talks to PostgreSQL.

* ``statements``: every SQL string pgtq sends;
* ``queries``: each call of the SQL API as a value (statement, parameters,
  reading of the rows), shared by every gateway;
* ``gateway``: plain functions that open connections and run those calls on
  a psycopg connection, returning typed records and raising pgtq's errors;
* ``conninfo``: what a DSN names (which server, a label without secrets).

Nothing above this layer imports psycopg to connect or execute, and nothing
above it holds SQL (tests/py/unit/test_layers.py checks both).
"""

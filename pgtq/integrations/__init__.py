"""Client API: push from where an application's transaction already is.

Each module hands pgtq the psycopg connection under a framework's own
connection, so ``handler.options(conn=...)`` joins that transaction: the job
exists only if it commits.

* ``pgtq.integrations.sqlalchemy``: a ``Session`` or ``Connection`` of
  SQLAlchemy 2.x (``postgresql+psycopg``), sync or async;
* ``pgtq.integrations.django``: Django's connection (the psycopg 3 backend),
  inside ``transaction.atomic()``.
"""

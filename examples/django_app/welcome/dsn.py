"""The libpq connection string of a Django connection's database (its test
database under the test runner), for code that opens its own connection."""

from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.conninfo import make_conninfo


def dsn_of(connection: BaseDatabaseWrapper) -> str:
    settings = connection.settings_dict
    keys = {"dbname": "NAME", "user": "USER", "password": "PASSWORD", "host": "HOST", "port": "PORT"}
    return make_conninfo(**{key: str(settings[name]) for key, name in keys.items() if settings.get(name)})
